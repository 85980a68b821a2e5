"""The kernel accepts what the renderers write: generated clusters, the golden files, and the
incremental nft transaction, which must leave exactly the state a full sync would."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from proxy_kernel import iptables_state, nft_state, write
from proxy_strategies import CONFIG, clusters

from operators.kube.objects import load_objects
from operators.proxy import iptables, nftables
from operators.proxy.offline import model_from_objects

GOLDEN = Path(__file__).parents[2] / "golden" / "proxy" / "expected"
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
LIST = "nft -j list ruleset"


def _check(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


@SETTINGS
@given(objects=clusters())
def test_generated_nft_is_accepted(objects, netns, tmp_path) -> None:
    model, _ = model_from_objects(objects, "node-a", CONFIG)
    _check(netns('nft -c -f "$RULES"', RULES=write(tmp_path, "rules.nft", nftables.render_full(model))))


@SETTINGS
@given(objects=clusters())
def test_generated_iptables_is_accepted(objects, netns, tmp_path) -> None:
    model, _ = model_from_objects(objects, "node-a", CONFIG)
    _check(netns('iptables-restore --test "$V4" && ip6tables-restore --test "$V6"',
                 V4=write(tmp_path, "v4", iptables.render(model, 4)),
                 V6=write(tmp_path, "v6", iptables.render(model, 6))))


@SETTINGS
@given(before=clusters(), after=clusters())
def test_incremental_nft_equals_full(before, after, netns, tmp_path) -> None:
    """full(old) + incremental(old, new) leaves the same table as full(new)."""
    old, _ = model_from_objects(before, "node-a", CONFIG)
    new, _ = model_from_objects(after, "node-a", CONFIG)
    files = {
        "OLD": write(tmp_path, "old.nft", nftables.render_full(old)),
        "DIFF": write(tmp_path, "diff.nft", nftables.render_incremental(old, new)),
        "NEW": write(tmp_path, "new.nft", nftables.render_full(new)),
    }
    out = _check(netns(f'nft -f "$OLD"; nft -f "$DIFF"; {LIST}; echo; nft -f "$NEW"; {LIST}', **files))
    via_diff, via_full = out.strip().split("\n", 1)
    assert nft_state(via_diff) == nft_state(via_full)
    assert nftables.render_incremental(new, new) == ""


@settings(SETTINGS, max_examples=10)  # three namespaces and six iptables runs per example
@given(before=clusters(), after=clusters())
def test_iptables_resync_removes_stale_chains(before, after, netns, tmp_path) -> None:
    """A second restore (--noflush, with the chains now present) equals a restore on a clean node."""
    old, _ = model_from_objects(before, "node-a", CONFIG)
    new, _ = model_from_objects(after, "node-a", CONFIG)
    jumps = "".join(f"iptables -t {t} -A {c} {shlex.join(a)}\n" for t, c, a in iptables.JUMPS)
    old_text = write(tmp_path, "old", iptables.render(old, 4))
    listed = _check(netns(f'iptables-restore --noflush "$OLD"; {jumps}iptables-save -t nat', OLD=old_text))
    existing = [line[1:].split()[0] for line in listed.splitlines() if line.startswith(":KNET-")]
    files = {"OLD": old_text, "NEW": write(tmp_path, "new", iptables.render(new, 4, existing)),
             "CLEAN": write(tmp_path, "clean", iptables.render(new, 4))}
    resynced = _check(netns(f'iptables-restore --noflush "$OLD"; {jumps}iptables-restore --noflush "$NEW"; '
                            "iptables-save", **files))
    clean = _check(netns(f'iptables-restore --noflush "$CLEAN"; {jumps}iptables-save', **files))
    assert iptables_state(resynced) == iptables_state(clean)


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.nft")), ids=lambda p: p.stem)
def test_golden_nft_is_accepted(path: Path, netns) -> None:
    _check(netns('nft -c -f "$RULES"', RULES=str(path)))


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.iptables")), ids=lambda p: p.stem)
def test_golden_iptables_is_accepted(path: Path, netns, tmp_path) -> None:
    for part in path.read_text().split("# knet service proxy, IPv")[1:]:
        tool = "iptables-restore" if part.startswith("4") else "ip6tables-restore"
        _check(netns(f'{tool} --test "$RULES"', RULES=write(tmp_path, "part", "#" + part)))


def test_golden_incremental_applies(netns, tmp_path) -> None:
    old, _ = model_from_objects(load_objects([GOLDEN.parent / "incremental" / "before.yaml"]), "node-a")
    _check(netns('nft -f "$OLD" && nft -f "$DIFF"', OLD=write(tmp_path, "old", nftables.render_full(old)),
                 DIFF=str(GOLDEN / "incremental.nft-diff")))


def test_cleanup_removes_the_table(netns, tmp_path) -> None:
    model, _ = model_from_objects([], "node-a")
    out = _check(netns('nft -f "$FULL"; nft -f "$CLEAN"; nft -f "$CLEAN"; nft list ruleset',
                       FULL=write(tmp_path, "full", nftables.render_full(model)),
                       CLEAN=write(tmp_path, "clean", nftables.render_cleanup())))
    assert out == ""
