"""Model and render behaviour that golden files show less directly: order independence, config,
class selection, endpoint resolution, the endpoint-update body, and refusals in the renderer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from operators.ingress.model import IngressConfig, ingress_is_ours
from operators.ingress.offline import model_from_objects, render
from operators.ingress.render import Runtime, _quote, render_config, render_endpoints
from operators.kube.ingresses import Ingress, IngressClass
from operators.kube.objects import load_objects

CASES = Path(__file__).parents[2] / "golden" / "ingress" / "cases"


@pytest.mark.parametrize("case", ["merge-conflicts", "canary", "tls", "hostile"])
def test_object_order_does_not_matter(case: str) -> None:
    objects = load_objects([CASES / f"{case}.yaml"])
    text, problems = render(objects)
    for seed in range(3):
        shuffled = objects[:]
        random.Random(seed).shuffle(shuffled)
        again, again_problems = render(shuffled)
        assert again == text and sorted(again_problems) == sorted(problems)


def test_config_from_dict() -> None:
    cfg, problems = IngressConfig.from_dict({"proxyBodySize": "10m", "proxyReadTimeout": 30, "sslRedirect": False,
                                             "loadBalance": "ewma", "defaultBackend": "kube-system/errors:http",
                                             "watchIngressWithoutClass": True})
    assert not problems
    assert (cfg.proxy_body_size, cfg.proxy_read_timeout, cfg.ssl_redirect, cfg.load_balance) == (
        "10m", 30, False, "least_conn")
    assert cfg.default_backend == "kube-system/errors:http" and cfg.watch_without_class
    bad, problems = IngressConfig.from_dict({"proxyBodySize": "10 m", "defaultBackend": "errors",
                                             "watchIngressWithoutClass": "yes"})
    assert bad == IngressConfig() and len(problems) == 3


def test_host_binding_is_on_unless_turned_off() -> None:
    assert IngressConfig.from_dict({})[0].bind_host_to_namespace
    assert not IngressConfig.from_dict({"bindHostToNamespace": False})[0].bind_host_to_namespace
    kept, problems = IngressConfig.from_dict({"bindHostToNamespace": "no"})
    assert kept.bind_host_to_namespace and len(problems) == 1


def _ing(class_name: str = "") -> Ingress:
    return Ingress("ns", "i", class_name, False, (), None, (), (), "")


def test_class_selection() -> None:
    ours, other = IngressClass("knet", "knet.io/ingress-nginx", False), IngressClass("x", "example.com/x", True)
    cfg = IngressConfig()
    assert ingress_is_ours(_ing("knet"), [ours, other], cfg)
    assert not ingress_is_ours(_ing("x"), [ours, other], cfg)
    assert not ingress_is_ours(_ing(), [ours, other], cfg)  # the default class is someone else's
    assert ingress_is_ours(_ing(), [IngressClass("knet", "knet.io/ingress-nginx", True)], cfg)
    assert not ingress_is_ours(_ing(), [ours], cfg)
    assert ingress_is_ours(_ing(), [ours], IngressConfig(watch_without_class=True))


def test_endpoints_ready_sorted_and_bracketed() -> None:
    model, _ = model_from_objects(load_objects([CASES / "dynamic-endpoints.yaml"]))
    api = next(u for u in model.upstreams if u.service == "app/api:8000" and u.method == "hash")
    assert api.endpoints == ("10.244.1.9:8000", "[fd00:10:244::9]:8000")
    body = render_endpoints(model)
    assert f"{api.name} 10.244.1.9 8000 fd00:10:244::9 8000\n" in body
    assert "app_idle_80\n" in body  # no endpoints: the balancer answers 503
    path_types, _ = model_from_objects(load_objects([CASES / "path-types.yaml"]))
    web = next(u for u in path_types.upstreams if u.name == "shop_web_80")
    assert web.endpoints == ("10.244.1.5:8080", "10.244.2.7:8080")  # the not-ready one is left out


def test_dynamic_config_does_not_depend_on_endpoints() -> None:
    objects = load_objects([CASES / "dynamic-endpoints.yaml"])
    model, _ = model_from_objects(objects)
    fewer, _ = model_from_objects([o for o in objects if o.get("kind") != "EndpointSlice"])
    rt = Runtime(dynamic_endpoints=True)
    assert render_config(model, rt) == render_config(fewer, rt)
    assert render_config(model) != render_config(fewer)


def test_certificate_files_carry_a_digest() -> None:
    model, _ = model_from_objects(load_objects([CASES / "tls.yaml"]))
    names = [name for name, _ in model.certificates]
    assert len(names) == 3 and all(n.startswith("shop_") and n.endswith(".pem") for n in names)
    assert all(b"PRIVATE KEY" in data for _, data in model.certificates)


def test_renderer_refusals() -> None:
    with pytest.raises(ValueError):
        Runtime(prefix="/tmp/a b").check()
    with pytest.raises(ValueError):
        Runtime(http_port=443).check()
    for bad in ('a"b', "a\nb", "$host"):
        with pytest.raises(ValueError):
            _quote(bad)
    assert _quote("^/a\\.b$", regex=True) == '"^/a\\\\.b$"'
