"""The Gateway API on the devcluster: `knet ingress` serves a Gateway and an HTTPRoute on its nginx, and writes
their status.

`knet ingress` runs as a hostNetwork pod on the worker (as in test_ingress.py) under the chart's own
ClusterRole for it, read from manifests/install.yaml, so the test also shows that role is enough. The
Gateway API CRDs are the chart's pinned copies. Requests come from the external client namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import Cluster, wait_for
from tests.e2e.test_ingress import backend, curl, metric, node_address, start_controller

ROOT = Path(__file__).parents[2]
CTL = "knet-gateway-e2e"
APPS = "gateway-apps"
CRDS = ("gatewayclasses", "gateways", "httproutes", "referencegrants")


def chart_ingress_rules() -> list[dict]:
    """The rules of the chart's ClusterRole for `knet ingress`."""
    docs = yaml.safe_load_all((ROOT / "manifests" / "install.yaml").read_text())
    return next(d["rules"] for d in docs if d and d.get("kind") == "ClusterRole"
                and d["metadata"]["name"] == "knet-ingress")


GATEWAY_OBJECTS = f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: knet-e2e}}
spec: {{controllerName: knet.io/gateway-nginx}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {APPS}}}
spec:
  gatewayClassName: knet-e2e
  listeners: [{{name: http, port: 80, protocol: HTTP, hostname: "*.gw.test"}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: {APPS}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [a.gw.test]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /hostname}}}}]
    backendRefs: [{{name: web, port: 80}}]
"""


@pytest.fixture(scope="module")
def served(cluster: Cluster) -> Iterator[str]:
    """The CRDs, the controller under the chart's role, the backend, the Gateway and the route; yields the
    worker's address once the route answers."""
    for plural in CRDS:
        path = ROOT / "charts" / "knet" / "files" / "gateway-api" / f"gateway.networking.k8s.io_{plural}.yaml"
        cluster.kubectl("apply", "--server-side", "-f", str(path))
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{plural}.gateway.networking.k8s.io")
    worker = node_address(cluster, f"{cluster.name}-worker")
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "knet-gateway-e2e"}, "rules": chart_ingress_rules()}
    cluster.apply(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CTL}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APPS}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "knet-ingress", "namespace": CTL}},
        role,
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "knet-gateway-e2e"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                               "kind": "ClusterRole", "name": "knet-gateway-e2e"},
         "subjects": [{"kind": "ServiceAccount", "name": "knet-ingress", "namespace": CTL}]}]))
    for ns, sa in ((CTL, "knet-ingress"), (APPS, "default")):
        wait_for(lambda ns=ns, sa=sa: cluster.kubectl("get", "sa", sa, "-n", ns, check=False).startswith("NAME"),
                 f"serviceaccount {ns}/{sa}", 30)
    start_controller(cluster, CTL, worker)
    cluster.apply(backend("web", 1, APPS) + GATEWAY_OBJECTS)
    wait_for(lambda: curl(cluster, worker, "a.gw.test", "/hostname")[1] in pods(cluster), "a.gw.test served", 120)
    yield worker
    cluster.kubectl("delete", "namespace", APPS, CTL, "--wait=false", check=False)
    cluster.kubectl("delete", "gatewayclass", "knet-e2e", check=False)
    cluster.kubectl("delete", "clusterrolebinding,clusterrole", "knet-gateway-e2e", check=False)


def pods(cluster: Cluster) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.pods(APPS, "app=web") if not p["metadata"].get("deletionTimestamp")
            and cluster.condition(p, "Ready") == "True"}


def conditions(status: dict) -> dict[str, str]:
    return {c["type"]: f"{c['status']}/{c['reason']}" for c in status.get("conditions", [])}


def test_the_route_answers_and_other_hosts_do_not(cluster: Cluster, served: str) -> None:
    assert curl(cluster, served, "a.gw.test", "/hostname")[0] == 200
    assert curl(cluster, served, "b.gw.test", "/hostname")[0] == 404


def test_statuses_say_accepted_and_programmed(cluster: Cluster, served: str) -> None:
    wait_for(lambda: conditions(cluster.get("gatewayclass", "knet-e2e")["status"]).get("Accepted") == "True/Accepted",
             "GatewayClass Accepted", 30)
    gw = wait_for(lambda: (g := cluster.get("gateway", "gw", "-n", APPS)["status"]).get("addresses") and g,
                  "Gateway status with addresses", 30)
    assert conditions(gw)["Accepted"] == "True/Accepted" and conditions(gw)["Programmed"] == "True/Programmed"
    assert (gw["listeners"][0]["attachedRoutes"], gw["addresses"]) == (1, [{"type": "IPAddress", "value": served}])
    parent = cluster.get("httproute", "web", "-n", APPS)["status"]["parents"][0]
    assert parent["controllerName"] == "knet.io/gateway-nginx" and parent["parentRef"]["name"] == "gw"
    assert conditions(parent) == {"Accepted": "True/Accepted", "ResolvedRefs": "True/ResolvedRefs"}


def test_a_route_backends_new_endpoint_is_served_without_a_reload(cluster: Cluster, served: str) -> None:
    reloads = metric(served, 'knet_ingress_reloads_total{result="success"}')
    cluster.apply(backend("web", 3, APPS))
    wait_for(lambda: len(pods(cluster)) == 3, "3 web pods ready", 120)
    seen: set[str] = set()
    wait_for(lambda: seen.add(curl(cluster, served, "a.gw.test", "/hostname")[1]) or seen >= pods(cluster),
             "every web pod answering through the route", 60)
    assert metric(served, 'knet_ingress_reloads_total{result="success"}') == reloads
