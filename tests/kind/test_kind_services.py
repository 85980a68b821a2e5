"""Services on kind through knet's agent alone (no kube-proxy): ClusterIP from pods on both workers,
NodePort and LoadBalancer from outside the nodes, and the cluster DNS from a pod's own resolv.conf."""

from __future__ import annotations

import pytest

from tests.e2e.harness import wait_for
from tests.kind.conftest import apply_all, client_pod, fetch_in, server_pod, wait_ready


def service(name: str, type_: str = "ClusterIP") -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": type_, "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}


@pytest.fixture
def web(kind, ns):
    """Two backends, one per worker, behind a LoadBalancer Service (so a ClusterIP and node ports too),
    and a client pod on each worker."""
    workers = [n["metadata"]["name"] for n in kind.nodes() if "control-plane" not in n["metadata"]["name"]]
    apply_all(kind, ns, *(server_pod(f"web-{i}", w, {"app": "web"}) for i, w in enumerate(workers)),
              *(client_pod(f"client-{i}", w) for i, w in enumerate(workers)), service("web", "LoadBalancer"))
    wait_ready(kind, ns, "web-0", "web-1", "client-0", "client-1")
    return kind.get("service", "web", "-n", ns)


def every_answer(fetch, want: set[str], what: str) -> None:
    seen: set[str] = set()

    def all_seen() -> bool:
        got = fetch()
        assert got in want | {""}, f"{what}: unexpected answer {got!r}"
        seen.add(got)
        return want <= seen
    wait_for(all_seen, f"{what}: every backend of {sorted(want)} answering (seen {seen})", 60, 0.2)


def test_cluster_ip_reaches_both_backends_from_pods_on_both_workers(kind, ns, web):
    for client in ("client-0", "client-1"):
        url = f"http://{web['spec']['clusterIP']}/"
        every_answer(lambda c=client, u=url: fetch_in(kind, f"{ns}/{c}", u), {"web-0", "web-1"}, client)


def test_node_port_answers_from_outside_the_nodes_on_every_node(kind, ns, web):
    port = web["spec"]["ports"][0]["nodePort"]
    for node in kind.nodes():
        url = f"http://{kind.node_ip(node)}:{port}/"
        every_answer(lambda u=url: kind.outside("curl", "-s", "--max-time", "3", u).stdout.strip(),
                     {"web-0", "web-1"}, f"node port on {node['metadata']['name']}")


def test_load_balancer_address_from_the_pool_answers_from_outside(kind, ns, web):
    lb = wait_for(lambda: kind.get("service", "web", "-n", ns)["status"]["loadBalancer"]["ingress"][0]["ip"],
                  "a LoadBalancer address", 60)
    assert lb.startswith("172.18.0.")
    every_answer(lambda: kind.outside("curl", "-s", "--max-time", "3", f"http://{lb}/").stdout.strip(),
                 {"web-0", "web-1"}, f"LoadBalancer {lb}")


def test_pod_resolves_services_through_its_resolv_conf(kind, ns, web):
    name = f"web.{ns}.svc.cluster.local"
    resolve = f"import socket; print(socket.gethostbyname('{name}'))"
    got = wait_for(lambda: kind.exec(f"{ns}/client-0", "python3", "-c", resolve).stdout.strip(), name, 60)
    assert got == web["spec"]["clusterIP"]
    url = f"http://web.{ns}/"  # the short name, through the search path
    every_answer(lambda: fetch_in(kind, f"{ns}/client-1", url), {"web-0", "web-1"}, f"{url} from client-1")
