"""Golden tests: objects in cases/<case>.yaml -> expected/<case>.conf and <case>.problems.

A case may hold a `kind: TestCase` document with the controller `config` (IngressConfig keys, and
`runtime` for Runtime keys). Cases whose runtime has dynamicEndpoints also get <case>.endpoints, the
body the controller would POST to nginx. Every case must pass `nginx -t` (test_nginx_accepts).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.ingress import render as ingress_render
from operators.ingress.offline import model_from_objects, render
from operators.kube.objects import load_objects

HERE = Path(__file__).parent
CASES = sorted((HERE / "cases").glob("*.yaml"))


def _config(objects: list[dict]) -> dict:
    return next((o for o in objects if o.get("kind") == "TestCase"), {}).get("config") or {}


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_case(case: Path, golden) -> None:
    objects = load_objects([case])
    config = _config(objects)
    text, problems = render(objects, config)
    golden(HERE / "expected" / f"{case.stem}.conf", text)
    golden(HERE / "expected" / f"{case.stem}.problems", "".join(f"{p}\n" for p in problems))
    assert render(objects, config) == (text, problems), "rendering is not deterministic"
    if (config.get("runtime") or {}).get("dynamicEndpoints"):
        model, _ = model_from_objects(objects, config)
        golden(HERE / "expected" / f"{case.stem}.endpoints", ingress_render.render_endpoints(model))


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_nginx_accepts(case: Path, nginx_t) -> None:
    objects = load_objects([case])
    config = _config(objects)
    model, _ = model_from_objects(objects, config)
    nginx_t(model, dynamic=bool((config.get("runtime") or {}).get("dynamicEndpoints")))


def test_every_expectation_has_a_case() -> None:
    stems = {c.stem for c in CASES}
    stale = [p.name for p in (HERE / "expected").iterdir() if p.name.rsplit(".", 1)[0] not in stems]
    assert not stale, f"expected files without a case: {stale}"
