"""The incremental transaction (`operators.nft.table.diff_table`): the table it leaves is the table a
full replacement gives, and it touches only what changed.

Transitions come from the golden cases: each case's ruleset before and after one of its objects is
taken away (a policy, a pod, a namespace), in both directions. In a throwaway network namespace the
kernel is given the old ruleset, then the diff; its table (as `nft -j` lists it: objects without
handles or counter values, each chain's rules in order) must equal the table of the new ruleset alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from operators.kube.objects import load_objects
from operators.netpol.nftables import RenderOptions, ruleset_text
from operators.netpol.offline import table_of
from operators.nft.table import Table, diff_table
from tests.golden.netpol.test_netpol_golden import _load as load_case
from tests.unit.conftest import _usable

CASES = sorted((Path(__file__).parents[2] / "golden" / "netpol" / "cases").glob("*.yaml"))

DRIVER = r"""
import json, subprocess, sys

def nft(text):
    p = subprocess.run(["nft", "-f", "-"], input=text, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"nft -f failed: {p.stderr}\n{text}")

def table():
    out = json.loads(subprocess.run(["nft", "-j", "list", "table", "inet", "knet-netpol"], capture_output=True,
                                    text=True, check=True).stdout)["nftables"]
    objects, rules = [], {}
    for item in out:
        (kind, body), = item.items()
        if kind == "metainfo":
            continue
        body = {k: v for k, v in body.items() if k not in ("handle", "packets", "bytes")}
        if kind == "rule":
            rules.setdefault(body["chain"], []).append(json.dumps(body["expr"], sort_keys=True))
        else:
            objects.append(json.dumps({kind: body}, sort_keys=True))
    return sorted(objects), rules

results = []
for old, step, new in json.loads(sys.stdin.read()):
    nft(old)
    if step:
        nft(step)
    updated = table()
    nft(new)
    results.append(updated == table())
print(json.dumps(results))
"""


def variants(case: Path) -> list[tuple[Table, Table]]:
    """(table of the case, table with one object fewer), for each object of the case."""
    header, objects = load_case(case)
    opts = RenderOptions(**header.get("options", {}))
    whole = table_of(objects, header["node"], opts)[0]
    return [(whole, table_of(objects[:i] + objects[i + 1:], header["node"], opts)[0]) for i in range(len(objects))]


def _objects(table: Table) -> dict[str, object]:
    return {o.name: o for o in (*table.counters, *table.sets, *table.chains)}


def test_nothing_changed_is_an_empty_update() -> None:
    table = table_of(load_objects([CASES[1]]), "node-a")[0]
    assert diff_table(table, table) == ""


def test_a_changed_comment_needs_a_replacement() -> None:
    table = table_of(load_objects([CASES[1]]), "node-a")[0]
    assert diff_table(table, replace(table, comment="changed")) is None


def test_only_changed_objects_are_touched() -> None:
    old, new = variants(CASES[4])[-1]  # 05-pod-selector-peer without its last object
    step = diff_table(old, new)
    assert step
    before, after = _objects(old), _objects(new)
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    touched = {line.split()[4] for line in step.splitlines()}  # `<verb> <kind> inet knet-netpol <name> ...`
    assert touched == changed


@pytest.mark.skipif(not _usable(), reason="needs nft and unshare --net (root)")
def test_update_gives_the_table_a_replacement_gives() -> None:
    pairs = [pair for case in CASES for a, b in variants(case) for pair in ((a, b), (b, a))]
    jobs = [(ruleset_text(old, "n"), step, ruleset_text(new, "n"))
            for old, new in pairs if old != new and (step := diff_table(old, new)) is not None]
    assert len(jobs) >= len(pairs) // 2, f"only {len(jobs)} of {len(pairs)} transitions were updates"
    proc = subprocess.run(["unshare", "--net", sys.executable, "-c", DRIVER], input=json.dumps(jobs),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    wrong = [job[1] for job, ok in zip(jobs, results, strict=True) if not ok]
    assert not wrong, f"{len(wrong)} of {len(jobs)} updates left another table; the first:\n{wrong[0]}"
