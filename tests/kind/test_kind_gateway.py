"""The Gateway API on kind, beside an Ingress on the same nginx: an HTTPRoute with a header match, a weighted
split and a redirect, requests sent from outside the nodes to the Gateway's address; and two Gateways with the
same listener on addresses of their own, each answering only its own routes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import wait_for
from tests.kind.conftest import KubeCluster, apply_all, server_pod, wait_ready


@pytest.fixture
def gateway_class(kind: KubeCluster, ns: str) -> Iterator[str]:
    """A GatewayClass of knet's controller for this test alone (cluster-scoped, so deleted here)."""
    name = f"{ns}-class"[:63]
    apply_all(kind, ns, {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                         "metadata": {"name": name}, "spec": {"controllerName": "knet.io/gateway-nginx"}})
    yield name
    kind.kubectl("delete", "gatewayclass", name, "--wait=false", check=False)


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


def backend(name: str, weight: int = 1) -> dict:
    return {"name": name, "port": 80, "weight": weight}


def objects(ns: str, gateway_class: str) -> list[dict]:
    host = f"{ns}.gw.example"
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw"},
               "spec": {"gatewayClassName": gateway_class, "listeners": [
                   {"name": "http", "port": 80, "protocol": "HTTP", "hostname": host}]}}
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"},
             "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host], "rules": [
                 {"matches": [{"headers": [{"name": "X-Stage", "value": "canary"}]}], "backendRefs": [backend("v2")]},
                 {"matches": [{"path": {"type": "PathPrefix", "value": "/split"}}],
                  "backendRefs": [backend("v1"), backend("v2")]},
                 {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}], "filters": [
                     {"type": "RequestRedirect", "requestRedirect": {
                         "statusCode": 301, "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}}]},
                 {"backendRefs": [backend("v1")]}]}}
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "legacy"},
               "spec": {"ingressClassName": "knet", "rules": [{"host": f"{ns}.ing.example", "http": {"paths": [
                   {"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "v2", "port": {"number": 80}}}}]}}]}}
    return [service("v1"), service("v2"), gateway, route, ingress]


def gateway_address(kind: KubeCluster, ns: str, name: str = "gw") -> str:
    status = kind.get("gateway", name, "-n", ns).get("status") or {}
    programmed = any(c["type"] == "Programmed" and c["status"] == "True" for c in status.get("conditions", []))
    return status["addresses"][0]["value"] if programmed and status.get("addresses") else ""


def ingress_address(kind: KubeCluster) -> str:
    """The address of knet's ingress Service, where the Ingresses are served."""
    ingress = (kind.get("service", "knet-ingress", "-n", "knet-system").get("status") or {}).get("loadBalancer", {})
    return (ingress.get("ingress") or [{}])[0].get("ip", "")


def fetch(kind: KubeCluster, url: str, host: str, *headers: str) -> tuple[str, str]:
    """(status code and Location, body) of a request from outside the nodes; ("", "") when nothing answers."""
    out = kind.outside("curl", "-s", "--max-time", "3", "-H", f"Host: {host}", *headers, "-w",
                       "\n%{http_code} %{redirect_url}", url).stdout.rsplit("\n", 1)
    return (out[1].strip(), out[0].strip()) if len(out) == 2 else ("", "")


def test_httproute_header_match_split_and_redirect_beside_an_ingress_from_outside(kind, ns, gateway_class):
    nodes = [n["metadata"]["name"] for n in kind.nodes()]
    apply_all(kind, ns, server_pod("v1", nodes[1], {"app": "v1"}), server_pod("v2", nodes[2], {"app": "v2"}),
              *objects(ns, gateway_class))
    wait_ready(kind, ns, "v1", "v2")
    address = wait_for(lambda: gateway_address(kind, ns), "the Gateway Programmed with an address", 60)

    def get(path: str, host: str = f"{ns}.gw.example", *headers: str) -> tuple[str, str]:
        return fetch(kind, f"http://{address}{path}", host, *headers)

    assert wait_for(lambda: get("/")[1] == "v1", f"the route's default rule through {address}", 60)
    assert wait_for(lambda: get("/", f"{ns}.gw.example", "-H", "X-Stage: canary")[1] == "v2",
                    "the header match, once v2's endpoints are pushed", 60)
    seen = {get("/split")[1] for _ in range(30)}
    assert seen == {"v1", "v2"}, f"a 1:1 split answered by {seen}"
    assert get("/old/page")[0] == f"301 http://{ns}.gw.example/new/page"
    assert get("/", "nobody.example")[0].startswith("404")
    # the Ingress, on the same nginx, stays on the ingress Service's address; the Gateway's does not serve it
    assert fetch(kind, f"http://{ingress_address(kind)}/", f"{ns}.ing.example")[1] == "v2"
    assert get("/", f"{ns}.ing.example")[0].startswith("404")


def test_two_gateways_with_the_same_listener_each_answer_only_their_routes_on_their_own_address(
        kind, ns, gateway_class):
    """Gateways a and b both listen on port 80 for any host (b also on 8080); a's route goes to v1, b's to v2,
    one route attached to both answers /shared on either. Each Gateway's own LoadBalancer Service, owned by
    it, goes away with it."""
    nodes = [n["metadata"]["name"] for n in kind.nodes()]

    def gateway(name: str, *ports: int) -> dict:
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": name},
                "spec": {"gatewayClassName": gateway_class, "listeners": [
                    {"name": f"http-{p}", "port": p, "protocol": "HTTP"} for p in ports]}}

    def route(name: str, parents: tuple[str, ...], path: str, to: str) -> dict:
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name},
                "spec": {"parentRefs": [{"name": p} for p in parents], "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": path}}], "backendRefs": [backend(to)]}]}}

    apply_all(kind, ns, server_pod("v1", nodes[1], {"app": "v1"}), server_pod("v2", nodes[2], {"app": "v2"}),
              service("v1"), service("v2"), gateway("a", 80), gateway("b", 80, 8080),
              route("only-a", ("a",), "/", "v1"), route("only-b", ("b",), "/", "v2"),
              route("shared", ("a", "b"), "/shared", "v2"))
    wait_ready(kind, ns, "v1", "v2")
    a = wait_for(lambda: gateway_address(kind, ns, "a"), "Gateway a Programmed with an address", 60)
    b = wait_for(lambda: gateway_address(kind, ns, "b"), "Gateway b Programmed with an address", 60)
    assert a != b and ingress_address(kind) not in (a, b)
    assert wait_for(lambda: fetch(kind, f"http://{a}/", "any.example")[1] == "v1", "a's route through a", 60)
    assert wait_for(lambda: fetch(kind, f"http://{b}/", "any.example")[1] == "v2", "b's route through b", 60)
    for _ in range(10):  # never the other Gateway's route
        assert fetch(kind, f"http://{a}/", "any.example")[1] == "v1"
        assert fetch(kind, f"http://{b}/", "any.example")[1] == "v2"
    assert fetch(kind, f"http://{a}/shared", "any.example")[1] == "v2"
    assert fetch(kind, f"http://{b}/shared", "any.example")[1] == "v2"
    assert wait_for(lambda: fetch(kind, f"http://{b}:8080/", "any.example")[1] == "v2", "b's port 8080", 60)
    assert fetch(kind, f"http://{a}:8080/", "any.example") == ("000", ""), "a has no listener on 8080"
    svc = kind.get("service", f"b-{gateway_class}", "-n", ns)
    assert svc["metadata"]["ownerReferences"][0]["name"] == "b" and svc["spec"]["type"] == "LoadBalancer"
    assert sorted(p["port"] for p in svc["spec"]["ports"]) == [80, 8080]
    kind.kubectl("delete", "gateway", "b", "-n", ns)
    assert wait_for(lambda: not kind.kubectl("get", "service", f"b-{gateway_class}", "-n", ns, "--ignore-not-found",
                                             "-o", "name").strip(), "b's Service deleted with it", 60)
    assert fetch(kind, f"http://{a}/", "any.example")[1] == "v1"
