"""Golden tests: Node objects in cases/<case>.yaml (and a GoldenCase header: the node, an MTU) -> the node's
CNI plan in expected/: <case>.conflist (absent when the node has no podCIDRs), <case>.routes (the peer
routes, then one `# problem:` line each) and <case>.nft (the masquerade table; tests/unit/cni checks that
`nft -c` accepts every one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from operators.cni.offline import format_routes, plan_of
from operators.cni.plan import Plan
from operators.kube.objects import load_objects

HERE = Path(__file__).parent
CASES = sorted((HERE / "cases").glob("*.yaml"))


def _plan(case: Path, reverse: bool = False) -> tuple[Plan, list[str]]:
    objects: list[dict[str, Any]] = load_objects([case])
    header = next(o for o in objects if o.get("kind") == "GoldenCase")
    objects = [o for o in objects if o is not header]
    return plan_of(objects[::-1] if reverse else objects, header["node"], header.get("mtu"))


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_golden_plan(case: Path, golden) -> None:
    plan, problems = _plan(case)
    conflist = HERE / "expected" / f"{case.stem}.conflist"
    if plan.conflist is None:
        assert not conflist.exists(), f"{conflist} is stale: the node has no podCIDRs"
    else:
        golden(conflist, plan.conflist)
        assert json.loads(plan.conflist)["name"] == "knet"
    golden(HERE / "expected" / f"{case.stem}.routes",
           format_routes(plan.routes) + "".join(f"# problem: {p}\n" for p in problems))
    golden(HERE / "expected" / f"{case.stem}.nft", plan.masquerade)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_the_order_of_the_objects_does_not_matter(case: Path) -> None:
    assert _plan(case, reverse=True) == _plan(case)


def test_every_expected_file_has_a_case() -> None:
    stems = {c.stem for c in CASES}
    assert not [p.name for p in (HERE / "expected").iterdir() if p.name.rsplit(".", 1)[0] not in stems]
