"""Golden tests: objects in cases/<case>.yaml -> expected/<case>.nft, .iptables and .problems.

A case may hold a `kind: TestCase` document with the `node` to render for (default node-a) and a
proxy `config`. incremental/{before,after}.yaml -> expected/incremental.nft-diff checks the
incremental nftables transaction the agent applies for a small change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.kube.objects import load_objects
from operators.proxy import nftables
from operators.proxy.offline import model_from_objects, render

HERE = Path(__file__).parent
CASES = sorted((HERE / "cases").glob("*.yaml"))


def _params(objects: list[dict]) -> tuple[str, dict | None]:
    case = next((o for o in objects if o.get("kind") == "TestCase"), {})
    return case.get("node", "node-a"), case.get("config")


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_case(case: Path, golden) -> None:
    objects = load_objects([case])
    node, config = _params(objects)
    for mode, suffix in (("nftables", "nft"), ("iptables", "iptables")):
        text, problems = render(objects, node, mode, config)
        golden(HERE / "expected" / f"{case.stem}.{suffix}", text)
        again, _ = render(objects, node, mode, config)
        assert again == text, "rendering is not deterministic"
    golden(HERE / "expected" / f"{case.stem}.problems", "".join(f"{p}\n" for p in problems))


def test_incremental(golden) -> None:
    old, _ = model_from_objects(load_objects([HERE / "incremental" / "before.yaml"]), "node-a")
    new, _ = model_from_objects(load_objects([HERE / "incremental" / "after.yaml"]), "node-a")
    golden(HERE / "expected" / "incremental.nft-diff", nftables.render_incremental(old, new))


def test_every_case_has_expectations() -> None:
    expected = {p.name for p in (HERE / "expected").iterdir()}
    stale = expected - {f"{c.stem}.{s}" for c in CASES for s in ("nft", "iptables", "problems")}
    assert stale == {"incremental.nft-diff"}, f"expected files without a case: {sorted(stale)}"
