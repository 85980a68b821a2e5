"""The Gateway API model's rules, one behaviour each (operators/gateway): attachment, listener conditions,
references, precedence, filters, and Ingress beside Gateway on one host and port."""

from __future__ import annotations

from typing import Any

import pytest

from operators.gateway import filters, views
from operators.gateway.offline import model_from_objects, status_text
from operators.ingress.model import IngressModel, Server
from operators.ingress.render import Runtime, render_config, render_endpoints

CLASS = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "knet"},
         "spec": {"controllerName": "knet.io/gateway-nginx"}}


def gateway(*listeners: dict, ns: str = "infra", name: str = "gw", created: str = "2026-01-01T00:00:00Z") -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": {"gatewayClassName": "knet", "listeners": list(listeners) or [http()]}}


def http(name: str = "http", port: int = 80, **extra: Any) -> dict:
    return {"name": name, "port": port, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}, **extra}


def route(*rules: dict, name: str = "r", ns: str = "app", hosts: tuple[str, ...] = (), parent: dict | None = None,
          created: str = "2026-01-02T00:00:00Z") -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": {"parentRefs": [parent or {"name": "gw", "namespace": "infra"}], "hostnames": list(hosts),
                     "rules": list(rules) or [rule()]}}


def rule(path: str = "/", kind: str = "PathPrefix", backend: str = "web", **match: Any) -> dict:
    return {"matches": [{"path": {"type": kind, "value": path}, **match}],
            "backendRefs": [{"name": backend, "port": 80}]}


def service(name: str = "web", ns: str = "app") -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80}]}}


def ingress(name: str, created: str) -> tuple[dict, dict]:
    """An Ingress for x.test (and its class), created at `created`."""
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    paths = [{"path": "/", "pathType": "Prefix", "backend": backend}]
    return ({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
             "metadata": {"name": name, "namespace": "app", "creationTimestamp": created},
             "spec": {"ingressClassName": "knet", "rules": [{"host": "x.test", "http": {"paths": paths}}]}},
            {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "knet"},
             "spec": {"controller": "knet.io/ingress-nginx"}})


def build(*objects: dict) -> tuple[IngressModel, list[str], list[str]]:
    model, problems, status = model_from_objects([CLASS, *objects])
    return model, [str(p) for p in problems], status_text(status)


def server(model: IngressModel, host: str, port: int = 80) -> Server:
    return next(s for s in model.servers if s.gateway and s.host == host and s.listens[0].port == port)


def route_status(lines: list[str], key: str = "app/r") -> str:
    return next(line for line in lines if line.startswith(f"HTTPRoute {key} "))


def test_a_route_without_hostnames_takes_the_listeners_hostname() -> None:
    model, _, _ = build(gateway(http(hostname="shop.example.com")), route(), service())
    assert server(model, "shop.example.com").matches[0].target.startswith("knet_r")


def test_a_wildcard_route_hostname_narrows_to_the_listeners_exact_one() -> None:
    model, _, _ = build(gateway(http(hostname="a.example.com")), route(hosts=("*.example.com",)), service())
    assert server(model, "a.example.com").matches


def test_no_shared_hostname_is_no_matching_listener_hostname() -> None:
    _, _, status = build(gateway(http(hostname="a.example.com")), route(hosts=("b.example.com",)), service())
    assert "Accepted=False(NoMatchingListenerHostname)" in route_status(status)


def test_a_section_name_no_listener_has_is_no_matching_parent() -> None:
    _, _, status = build(gateway(), route(parent={"name": "gw", "namespace": "infra", "sectionName": "nope"}))
    assert "Accepted=False(NoMatchingParent)" in route_status(status)


def test_allowed_routes_same_namespace_refuses_another_namespace() -> None:
    _, _, status = build(gateway(http(allowedRoutes={"namespaces": {"from": "Same"}})), route(), service())
    assert "Accepted=False(NotAllowedByListeners)" in route_status(status)


def test_allowed_routes_selector_reads_namespace_labels() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app", "labels": {"team": "shop"}}}
    selector = {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "shop"}}}}
    _, _, status = build(gateway(http(allowedRoutes=selector)), route(), service(), ns)
    assert "Accepted=True(Accepted)" in route_status(status)


def test_a_backend_in_another_namespace_needs_a_reference_grant() -> None:
    crossing = rule()
    crossing["backendRefs"][0]["namespace"] = "other"
    _, _, status = build(gateway(), route(crossing), service(ns="other"))
    assert "ResolvedRefs=False(RefNotPermitted)" in route_status(status)
    grant = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
             "metadata": {"name": "g", "namespace": "other"},
             "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "app"}],
                      "to": [{"group": "", "kind": "Service"}]}}
    _, _, status = build(gateway(), route(crossing), service(ns="other"), grant)
    assert "ResolvedRefs=True(ResolvedRefs)" in route_status(status)


def test_a_missing_backend_is_backend_not_found_and_its_share_answers_500() -> None:
    model, _, status = build(gateway(), route(rule(backend="gone")))
    assert "ResolvedRefs=False(BackendNotFound)" in route_status(status)
    action = server(model, "").locations[1].action
    assert action is not None and [s.upstream for s in action.splits] == [""]


def test_weight_zero_backends_get_no_traffic() -> None:
    weighted = rule()
    weighted["backendRefs"] = [{"name": "web", "port": 80, "weight": 0}]
    action = server(build(gateway(), route(weighted), service())[0], "").locations[1].action
    assert action is not None and action.splits == ()


def test_an_https_certificate_in_another_namespace_without_a_grant_is_not_served() -> None:
    https = {"name": "https", "port": 443, "protocol": "HTTPS",
             "tls": {"certificateRefs": [{"name": "cert", "namespace": "certs"}]}}
    _, _, status = build(gateway(https))
    line = next(x for x in status if "listener https" in x)
    assert "ResolvedRefs=False(RefNotPermitted)" in line and "Programmed=False(Invalid)" in line


def test_a_route_counts_on_a_listener_without_its_certificate_but_is_not_served_there() -> None:
    https = {"name": "https", "port": 443, "protocol": "HTTPS", "allowedRoutes": {"namespaces": {"from": "All"}},
             "tls": {"certificateRefs": [{"name": "missing"}]}}
    model, _, status = build(gateway(https), route(hosts=("x.test",)), service())
    line = next(x for x in status if "listener https" in x)
    assert "attachedRoutes 1" in line and "Programmed=False(Invalid)" in line
    assert "Accepted=True" in route_status(status)
    assert not [s for s in model.servers if s.gateway]


def test_two_protocols_on_one_port_conflict() -> None:
    _, _, status = build(gateway(http(port=8080), {"name": "tls", "port": 8080, "protocol": "HTTPS"}))
    assert all("Conflicted=True(ProtocolConflict)" in x for x in status if " listener " in x)


def test_two_listeners_with_one_hostname_and_port_conflict() -> None:
    _, _, status = build(gateway(http("a", 8080, hostname="x.test"), http("b", 8080, hostname="x.test")))
    assert all("Conflicted=True(HostnameConflict)" in x for x in status if " listener " in x)


def test_an_unsupported_protocol_is_not_accepted() -> None:
    _, _, status = build(gateway({"name": "tcp", "port": 9000, "protocol": "TCP"}))
    assert "Accepted=False(UnsupportedProtocol)" in next(x for x in status if "listener tcp" in x)


def test_a_port_another_server_of_the_pod_has_is_unavailable_and_never_rendered() -> None:
    objects = [CLASS, gateway(http(port=8080), http("web", port=8000)), route(), service()]
    model, _, status = model_from_objects(objects, taken_ports=(8080, 9090))
    lines = status_text(status)
    assert "Accepted=False(PortUnavailable)" in next(x for x in lines if "listener http " in x)
    assert "Programmed=True" in next(x for x in lines if "listener web " in x)
    assert sorted({ls.port for s in model.servers if s.gateway for ls in s.listens}) == [8000]


def test_a_gateway_of_another_class_gets_no_status() -> None:
    other = gateway(name="theirs")
    other["spec"]["gatewayClassName"] = "someone-else"
    _, _, status = build(other)
    assert not [x for x in status if "theirs" in x]


def test_an_unsafe_header_value_refuses_only_its_rule() -> None:
    bad = rule("/bad", headers=[{"name": "X-A", "value": 'x"; return 200 "owned'}])
    model, _, status = build(gateway(), route(bad, rule("/good")), service())
    assert "PartiallyInvalid=True(UnsupportedValue)" in route_status(status)
    assert [m.comment.split(" match ")[1] for m in server(model, "").matches] == ["PathPrefix /good"]


def test_a_route_with_no_acceptable_rule_is_not_accepted_and_others_still_serve() -> None:
    bad = route(rule("/x", kind="RegularExpression", backend="web") | {"matches": [
        {"path": {"type": "RegularExpression", "value": "/(?=lookahead)"}}]}, name="bad")
    model, _, status = build(gateway(), bad, route(rule("/ok")), service())
    assert "Accepted=False(UnsupportedValue)" in route_status(status, "app/bad")
    assert [m.comment.split()[0] for m in server(model, "").matches] == ["app/r"]


def test_precedence_exact_then_longest_prefix_then_method_headers_queries() -> None:
    rules = [rule("/a"), rule("/a/b"), rule("/a/b", kind="Exact"), rule("/a", method="GET"),
             rule("/a", headers=[{"name": "X", "value": "1"}]), rule("/a", queryParams=[{"name": "q", "value": "1"}])]
    model, _, _ = build(gateway(), route(*rules), service())
    order = [int(m.comment.split(" rule ")[1].split()[0]) for m in server(model, "").matches]
    assert order == [2, 1, 3, 4, 5, 0]


def test_the_older_route_wins_a_tie() -> None:
    model, _, _ = build(gateway(), route(name="young", created="2026-03-01T00:00:00Z"),
                        route(name="old", created="2026-02-01T00:00:00Z"), service())
    assert [m.comment.split()[0] for m in server(model, "").matches] == ["app/old", "app/young"]


def test_an_older_ingress_keeps_its_host_on_its_port_and_the_route_gets_a_problem() -> None:
    model, problems, _ = build(gateway(), route(hosts=("x.test",)), service(), *ingress("old", "2025-01-01T00:00:00Z"))
    assert not [s for s in model.servers if s.gateway and s.host == "x.test"]
    assert any("HTTPRoute app/r" in p and "Ingress app/old, which is older" in p for p in problems)


def test_an_older_route_takes_the_ingress_port_and_the_ingress_keeps_the_other() -> None:
    model, problems, _ = build(gateway(), route(hosts=("x.test",)), service(), *ingress("new", "2027-01-01T00:00:00Z"))
    legacy = next(s for s in model.servers if not s.gateway and s.host == "x.test")
    assert [(x.port, x.tls) for x in legacy.listens] == [(443, True)]
    assert any("Ingress app/new" in p and "HTTPRoute app/r, which is older" in p for p in problems)


def test_durations_read_as_the_gateway_api_writes_them() -> None:
    assert filters.timeout_ms("", "1h30m") == 5_400_000
    assert filters.timeout_ms("500ms", "") == 500


def test_replace_prefix_match_keeps_path_elements() -> None:
    assert filters.rewrite(("ReplacePrefixMatch", "/new/"), "/old") == ("^/old(/.*)?$", "/new$1")
    assert filters.rewrite(("ReplacePrefixMatch", "/"), "/old/") == ("^/old/?(.*)$", "/$1")


def test_listener_isolation_the_most_specific_listener_hostname_takes_the_request() -> None:
    wide = route(name="wide", parent={"name": "gw", "namespace": "infra", "sectionName": "wild"})
    narrow = route(name="narrow", parent={"name": "gw", "namespace": "infra", "sectionName": "a"})
    model, _, _ = build(gateway(http("wild", hostname="*.example.com"), http("a", hostname="a.example.com")),
                        wide, narrow, service())
    assert [m.comment.split()[0] for m in server(model, "a.example.com").matches] == ["app/narrow"]
    assert [m.comment.split()[0] for m in server(model, "*.example.com").matches] == ["app/wide"]


def test_status_conditions_have_the_api_shape() -> None:
    from operators.gateway.conditions import condition, to_status

    (c,) = to_status([condition("Accepted", False, "NoMatchingParent", "why")], 3, "2026-12-07T00:00:00Z")
    assert c == {"type": "Accepted", "status": "False", "reason": "NoMatchingParent", "message": "why",
                 "observedGeneration": 3, "lastTransitionTime": "2026-12-07T00:00:00Z"}


def endpoints(*ips: str) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "web-a", "namespace": "app", "labels": {"kubernetes.io/service-name": "web"}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


def test_a_route_backends_endpoint_change_is_pushed_without_a_new_config() -> None:
    rt = Runtime(dynamic_endpoints=True)
    (one, _, _), (two, _, _) = (model_from_objects([CLASS, gateway(), route(), service(), endpoints(*ips)])
                                for ips in (["10.0.0.1"], ["10.0.0.1", "10.0.0.2"]))
    assert render_config(one, rt) == render_config(two, rt)
    assert "10.0.0.2" in render_endpoints(two) and "10.0.0.2" not in render_endpoints(one)


def test_a_mirror_copies_its_percent_or_fraction_of_requests() -> None:
    def share(**settings: Any) -> int:
        return filters.mirror_share(views.Filter("RequestMirror", tuple(sorted(settings.items()))))

    assert (share(), share(percent=20), share(fraction=(("denominator", 3), ("numerator", 1)))) == (10000, 2000, 3333)
    assert share(fraction=(("numerator", 25),)) == 2500, "the denominator is 100 by default"
    for bad in ({"percent": 101}, {"fraction": (("denominator", 2), ("numerator", 3))},
                {"fraction": (("denominator", 0), ("numerator", 0))}):
        with pytest.raises(filters.Refused):
            share(**bad)
    model, _, _ = build(gateway(), service(), service("copy"), route({**rule(), "filters": [
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "copy", "port": 80}, "percent": 0}},
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "copy", "port": 80}, "percent": 35}}]}))
    (action,) = [loc.action for loc in server(model, "").locations if loc.action]
    assert action.mirrors == (("app_copy_80", 3500),), "a 0% mirror copies nothing"
    assert "split_clients $request_id $knet_mirror_3500 {\n        35% 1;" in render_config(model, Runtime())


def test_a_cors_filter_is_read_in_a_narrow_grammar_and_refused_alone_otherwise() -> None:
    def cors(**settings: Any) -> Any:
        frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in settings.items()))
        return filters.parts((views.Filter("CORS", frozen),)).cors

    c = cors(allowOrigins=["https://*.bar.com", "http://a.com:8080"], allowMethods=["GET"], allowHeaders=["*", "x"])
    assert (c.origins, c.methods, c.headers, c.expose, c.max_age, c.credentials) == (
        ("https://*.bar.com", "http://a.com:8080"), ("GET",), ("*",), (), 5, False)
    assert cors(allowOrigins=["*", "https://a.com"]).origins == ("*",)
    for bad in ({"allowOrigins": ["https://a.com/path"]}, {"allowOrigins": ['https://a"b.com']},
                {"allowMethods": ["get;"]}, {"allowHeaders": ["x y"]}, {"maxAge": -1}):
        with pytest.raises(filters.Refused):
            cors(**bad)
