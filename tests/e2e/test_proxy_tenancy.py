"""One tenant's Service cannot take another's traffic: real packets, in both proxy modes.

Namespace `a` sorts before `kube-system`, the order that once settled collisions. Its Service `x` claims
the cluster DNS address (10.96.0.10, UDP and TCP port 53) and a node's address (port 10250) as
externalIPs, with the administrator allowing externalIPs in the service range and on the underlay, so that
only the rules "a ClusterIP always wins" and "never a node's address" stand in the way.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import Cluster, wait_for
from tests.e2e.proxy_helpers import Proxy, allow_external_ips, deployed_agent, pod_manifest

CRDS = ("clusternetworkconfigs.knet.io", "nodenetworkstatuses.knet.io")
DNS_IP = "10.96.0.10"
NETEXEC = "[netexec, --http-port=8080, --udp-port=8081]"
PORTS = ("[{name: dns, port: 53, protocol: UDP, targetPort: 8081}, "
         "{name: dns-tcp, port: 53, protocol: TCP, targetPort: 8080}, "
         "{name: kubelet, port: 10250, protocol: TCP, targetPort: 8080}]")


@pytest.fixture(scope="module")
def proxy(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Proxy]:
    with deployed_agent(cluster, request, CRDS) as px:
        yield px


@pytest.fixture(scope="module")
def takeover(cluster: Cluster, proxy: Proxy) -> Iterator[str]:
    """kube-system/kube-dns at 10.96.0.10 over the pod `dns-victim`; a/x over the pod `thief`, claiming
    10.96.0.10 and the first node's address as externalIPs; a client pod in `a`: its name."""
    assert not cluster.kubectl("get", "service", "-n", "kube-system", "kube-dns", check=False).startswith("NAME")
    node_ip = proxy.node_ip(proxy.nodes[0])
    cluster.kubectl("create", "namespace", "a")
    for ns in ("a", "kube-system"):
        wait_for(lambda n=ns: cluster.kubectl("get", "sa", "default", "-n", n, check=False).startswith("NAME"),
                 f"the default service account of {ns}", 30)
    cluster.apply(f"""
apiVersion: v1
kind: Service
metadata: {{name: kube-dns, namespace: kube-system}}
spec: {{clusterIP: {DNS_IP}, selector: {{k8s-app: kube-dns}}, ports: {PORTS}}}
---
apiVersion: v1
kind: Service
metadata: {{name: x, namespace: a}}
spec: {{selector: {{app: thief}}, externalIPs: [{DNS_IP}, {node_ip}], ports: {PORTS}}}
---{pod_manifest("kube-system", "dns-victim", proxy.nodes[0], "{k8s-app: kube-dns}", args=NETEXEC)}
---{pod_manifest("a", "thief", proxy.nodes[1], "{app: thief}", args=NETEXEC)}
---{pod_manifest("a", "client", proxy.nodes[1])}
""")
    try:
        pods = (("kube-system", "dns-victim"), ("a", "thief"), ("a", "client"))
        wait_for(lambda: all(cluster.condition(cluster.get("pod", "-n", ns, name), "Ready") == "True"
                             for ns, name in pods), "the pods ready", 120)
        yield "a/client"
    finally:
        cluster.kubectl("delete", "namespace", "a", "--wait=false", check=False)
        cluster.kubectl("delete", "service,pod", "-n", "kube-system", "kube-dns", "dns-victim", "--wait=false",
                        check=False)


def use_mode(cluster: Cluster, proxy: Proxy, mode: str) -> None:
    """Allow externalIPs in the service range and on the underlay, in `mode`, and wait for every node."""
    allow_external_ips(cluster, [*proxy.layout.service_cidrs, str(proxy.layout.underlay_v4)], mode)
    for node in proxy.nodes:
        wait_for(lambda n=node: cluster.get("nodenetworkstatus", n).get("status", {}).get("proxyMode") == mode,
                 f"{node} in {mode} mode", 30)


@pytest.mark.parametrize("mode", ["nftables", "iptables"])
def test_an_external_ip_cannot_take_the_cluster_dns_address_or_a_node(
        cluster: Cluster, proxy: Proxy, takeover: str, mode: str) -> None:
    use_mode(cluster, proxy, mode)
    wait_for(lambda: proxy.udp(takeover, DNS_IP, 53) == ["dns-victim"], f"kube-dns over UDP ({mode})", 30)
    assert set(proxy.udp(takeover, DNS_IP, 53, n=10)) == {"dns-victim"}
    assert set(proxy.fetch(takeover, f"http://{DNS_IP}:53/hostname", 5)) == {"dns-victim"}
    assert "thief" not in proxy.fetch(takeover, f"http://{proxy.node_ip(proxy.nodes[0])}:10250/hostname", 5)
    wanted = (f"{DNS_IP} is a ClusterIP of Service kube-system/kube-dns", "is a Node's address")

    def events_saying_why() -> bool:
        got = " ".join(e["message"] for e in cluster.get(
            "events", "-n", "a", "--field-selector", "involvedObject.name=x")["items"])
        assert all(w in got for w in wanted), got
        return True
    # a/x was refused first for lying outside the allowed ranges, before `use_mode` allowed them
    wait_for(events_saying_why, f"Events on a/x saying {wanted}", 30)
