"""NetworkPolicy and Ingress on kind: one allow/deny pair, one Ingress route from outside the nodes."""

from __future__ import annotations

from tests.e2e.harness import wait_for
from tests.kind.conftest import apply_all, client_pod, fetch_in, server_pod, wait_ready

ONLY_FRIENDS = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "only-friends"},
                "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                         "ingress": [{"from": [{"podSelector": {"matchLabels": {"friend": "yes"}}}]}]}}


def test_network_policy_admits_the_friend_and_drops_the_stranger(kind, ns):
    node = kind.nodes()[1]["metadata"]["name"]
    apply_all(kind, ns, server_pod("web", node, {"app": "web"}), client_pod("friend", node, {"friend": "yes"}),
              client_pod("stranger", node))
    wait_ready(kind, ns, "web", "friend", "stranger")
    ip = kind.get("pod", "web", "-n", ns)["status"]["podIP"]
    assert fetch_in(kind, f"{ns}/stranger", f"http://{ip}:8080/") == "web"
    apply_all(kind, ns, ONLY_FRIENDS)
    wait_for(lambda: fetch_in(kind, f"{ns}/stranger", f"http://{ip}:8080/") == "", "the stranger dropped", 30)
    assert fetch_in(kind, f"{ns}/friend", f"http://{ip}:8080/") == "web"


def ingress_address(kind) -> str:
    services = kind.get("service", "-n", "knet-system", "-l", "app.kubernetes.io/component=ingress")["items"]
    lb = next(s for s in services if s["spec"]["type"] == "LoadBalancer")
    return lb["status"]["loadBalancer"]["ingress"][0]["ip"]


def test_ingress_routes_a_host_from_outside_the_nodes(kind, ns):
    node = kind.nodes()[2]["metadata"]["name"]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
           "spec": {"ingressClassName": "knet", "rules": [{"host": f"{ns}.example", "http": {"paths": [
               {"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
    apply_all(kind, ns, server_pod("web", node, {"app": "web"}), svc, ing)
    wait_ready(kind, ns, "web")
    lb = wait_for(lambda: ingress_address(kind), "the ingress address", 60)
    get = lambda: kind.outside("curl", "-s", "--max-time", "3", "-H", f"Host: {ns}.example", f"http://{lb}/")  # noqa: E731
    assert wait_for(lambda: get().stdout.strip() == "web", f"{ns}.example through the ingress at {lb}", 60)
    assert fetch_in(kind, f"{ns}/web", "http://127.0.0.1:8080/") == "web"
