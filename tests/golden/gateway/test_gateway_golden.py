"""Golden tests: Gateway API objects (with Ingresses) in cases/<case>.yaml -> expected/<case>.conf, the
problems (<case>.problems) and the status knet would write (<case>.status); every case passes `nginx -t`."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingress_nginx import LUA_MODULE, NGINX, nginx_check

from operators.gateway.offline import model_from_objects, status_text
from operators.ingress.render import Runtime, render_config
from operators.kube.objects import load_objects

HERE = Path(__file__).parent
CASES = sorted((HERE / "cases").glob("*.yaml"))
OWN_PORTS = (20000, 20999)  # cases named own-*: each Gateway on its own address, as the chart's ingress runs


def build(case: Path) -> tuple:
    return model_from_objects(load_objects([case]), own_ports=OWN_PORTS if case.stem.startswith("own-") else None)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_case(case: Path, golden) -> None:
    model, problems, status = build(case)
    text = render_config(model, Runtime())
    golden(HERE / "expected" / f"{case.stem}.conf", text)
    golden(HERE / "expected" / f"{case.stem}.problems", "".join(f"{p}\n" for p in problems))
    golden(HERE / "expected" / f"{case.stem}.status", "".join(f"{line}\n" for line in status_text(status)))
    again, _, _ = build(case)
    assert render_config(again, Runtime()) == text, "rendering is not deterministic"


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "lua"])
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_nginx_accepts(case: Path, dynamic: bool, tmp_path: Path) -> None:
    if not Path(NGINX).exists() or (dynamic and not LUA_MODULE.exists()):
        pytest.skip("nginx (or its Lua module) is not installed")
    model, _, _ = build(case)
    nginx_check(model, tmp_path, dynamic)


def test_every_expectation_has_a_case() -> None:
    stems = {c.stem for c in CASES}
    stale = [p.name for p in (HERE / "expected").iterdir() if p.name.rsplit(".", 1)[0] not in stems]
    assert not stale, f"expected files without a case: {stale}"
