"""Golden tests: objects in cases/<case>.yaml -> expected/<case>.Corefile and expected/<case>.problems.

A case may hold a `kind: TestCase` document with `cluster` ports (dnsPort, healthPort, readyPort,
metricsPort) for the CoreDNS Deployment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from operators.dns.corefile import ClusterSettings
from operators.dns.offline import render_corefile
from operators.kube.objects import load_objects

HERE = Path(__file__).parent
CASES = sorted((HERE / "cases").glob("*.yaml"))


def _cluster(objects: list[dict]) -> ClusterSettings:
    case = next((o for o in objects if o.get("kind") == "TestCase"), {})
    ports = case.get("cluster") or {}
    return ClusterSettings(**{re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), k): v for k, v in ports.items()})


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_case(case: Path, golden) -> None:
    objects = load_objects([case])
    text, problems = render_corefile(objects, _cluster(objects))
    golden(HERE / "expected" / f"{case.stem}.Corefile", text)
    golden(HERE / "expected" / f"{case.stem}.problems", "".join(f"{p}\n" for p in problems))
    assert render_corefile(objects, _cluster(objects)) == (text, problems), "rendering is not deterministic"


def test_every_case_has_expectations() -> None:
    expected = {p.name for p in (HERE / "expected").iterdir()}
    stale = expected - {f"{c.stem}.{s}" for c in CASES for s in ("Corefile", "problems")}
    assert not stale, f"expected files without a case: {sorted(stale)}"


def test_the_cluster_zones_are_not_cached_as_in_kubeadms_corefile() -> None:
    text, _ = render_corefile(load_objects([HERE / "cases" / "defaults.yaml"]), ClusterSettings())
    assert "disable success cluster.local" in text and "disable denial cluster.local" in text
