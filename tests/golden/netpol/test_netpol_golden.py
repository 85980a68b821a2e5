"""Golden tests: cases/<case>.yaml (objects + a GoldenCase header) -> expected/<case>.nft.

Each case also lists explain expectations, so a golden file is checked for meaning, not only
compared for bytes (tests/unit/netpol checks that `nft -c` accepts every expected file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from operators.kube.objects import load_objects
from operators.netpol.explain import explain
from operators.netpol.nftables import RenderOptions
from operators.netpol.offline import format_verdict, render

HERE = Path(__file__).parent
CASES = sorted((HERE / "cases").glob("*.yaml"))


def _load(case: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    objects = load_objects([case])
    header = next(o for o in objects if o.get("kind") == "GoldenCase")
    return header, [o for o in objects if o is not header]


def _render(case: Path) -> str:
    header, objects = _load(case)
    text, problems = render(objects, header["node"], RenderOptions(**header.get("options", {})))
    return text + "".join("# problem: " + p.replace("\n", "\\n") + "\n" for p in problems)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_golden_ruleset(case: Path, golden) -> None:
    golden(HERE / "expected" / f"{case.stem}.nft", _render(case))


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_explain_expectations(case: Path) -> None:
    header, objects = _load(case)
    assert header.get("explain"), "every case states what explain should answer"
    for src, dst, port, proto, want in header["explain"]:
        verdict = explain(objects, src, dst, port, proto)
        got = "allow" if verdict.allowed else "deny"
        assert got == want, f"{src} -> {dst} {port}/{proto}:\n{format_verdict(verdict)}"


def test_rendering_is_deterministic() -> None:
    for case in CASES:
        header, objects = _load(case)
        first = render(objects, header["node"])
        assert render(list(reversed(objects)), header["node"]) == first, case.stem
