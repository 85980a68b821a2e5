"""The Service proxy end to end: `knet agent` as a DaemonSet (no kube-proxy) makes Services work.

Real traffic from pods on each node, from the nodes and from the external client; agnhost's answers
(hostname, client address) say which backend answered and what it saw.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from tests.e2e.harness import Cluster, wait_for
from tests.e2e.proxy_helpers import (
    AGENT_NS,
    HEALTH_PORT,
    METRICS_PORT,
    Proxy,
    age,
    allow_external_ips,
    backends_manifest,
    deployed_agent,
    pod_manifest,
)

NS = "proxy-e2e"
HOSTNAME = re.compile(r"^netexec-[a-z0-9]+-[a-z0-9]+$")


@pytest.fixture(scope="module")
def proxy(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Proxy]:
    """The agent on every node, ready, with externalIPs allowed in the underlay's upper addresses;
    removed afterwards with its rules (see `deployed_agent`)."""
    with deployed_agent(cluster, request, ("clusternetworkconfigs.knet.io",)) as px:
        allow_external_ips(cluster, [f"{px.layout.underlay_v4[200]}/32"])
        yield px


@pytest.fixture(scope="module")
def backends(cluster: Cluster, proxy: Proxy) -> Iterator[dict[str, list[str]]]:
    """netexec pods (node -> pod names, 2 per node) and a client pod `client-<i>` on node i."""
    cluster.kubectl("create", "namespace", NS)
    wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", NS, check=False).startswith("NAME"),
             "default service account", 30)
    cluster.apply(backends_manifest(NS) + "".join(
        "---" + pod_manifest(NS, f"client-{i}", node) for i, node in enumerate(proxy.nodes)))

    def ready() -> dict[str, list[str]] | None:
        pods = [p for p in cluster.get("pods", "-n", NS)["items"] if cluster.condition(p, "Ready") == "True"]
        if len(pods) != 4 + len(proxy.nodes):
            return None
        by_node: dict[str, list[str]] = {n: [] for n in proxy.nodes}
        for p in pods:
            if p["metadata"]["name"].startswith("netexec-"):
                by_node[p["spec"]["nodeName"]].append(p["metadata"]["name"])
        return by_node if all(len(v) == 2 for v in by_node.values()) else None

    try:
        yield wait_for(ready, "4 netexec pods spread 2/2 and the clients", 120)
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def service(name: str, spec: str, selector: str = "{app: netexec}") -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {NS}}}
spec:
  selector: {selector}
  {spec}
"""


def apply_service(cluster: Cluster, name: str, spec: str, selector: str = "{app: netexec}") -> dict:
    cluster.apply(service(name, spec, selector))
    return cluster.get("service", "-n", NS, name)


def clients(proxy: Proxy) -> dict[str, str]:
    """node -> the client pod there (`ns/name`)."""
    return {node: f"{NS}/client-{i}" for i, node in enumerate(proxy.nodes)}


def all_backends(backends: dict[str, list[str]]) -> set[str]:
    return {p for pods in backends.values() for p in pods}


def answered(proxy: Proxy, where: str, url: str) -> bool:
    return bool(HOSTNAME.match(proxy.fetch(where, url)[0]))


@pytest.fixture(scope="module")
def web(cluster: Cluster, proxy: Proxy, backends: dict) -> str:
    """A ClusterIP Service over the netexec pods, targetPort by name, answering: its ClusterIP."""
    vip = apply_service(cluster, "web", "ports: [{name: http, port: 80, targetPort: http}]")["spec"]["clusterIP"]
    wait_for(lambda: answered(proxy, clients(proxy)[proxy.nodes[0]], f"http://{vip}/hostname"), "web answers", 30)
    return vip


def test_cluster_ip_spreads_over_all_ready_endpoints_from_pods_and_nodes(
    proxy: Proxy, backends: dict[str, list[str]], web: str
) -> None:
    url = f"http://{web}/hostname"
    for client in clients(proxy).values():
        proxy.every_answer(client, url, all_backends(backends))
    for agent in proxy.agent_pods().values():  # hostNetwork: traffic from the node itself
        proxy.every_answer(f"{AGENT_NS}/{agent}", url, all_backends(backends))


def test_the_kubernetes_service_reaches_the_api_server(proxy: Proxy, backends: dict) -> None:
    url = f"https://{proxy.layout.kubernetes_service_ip}/version"
    for where in [*clients(proxy).values(), *(f"{AGENT_NS}/{pod}" for pod in proxy.agent_pods().values())]:
        out = proxy.cluster.exec(where, "curl", "-sk", "-m", "5", url)
        assert json.loads(out.stdout or "{}").get("gitVersion", "").startswith("v1."), (where, out.stdout, out.stderr)


def test_multi_port_with_target_ports_by_name_tcp_and_udp(
    cluster: Cluster, proxy: Proxy, backends: dict[str, list[str]]
) -> None:
    svc = apply_service(cluster, "multi", """ports:
  - {name: http, port: 80, targetPort: http}
  - {name: http-alt, port: 8000, targetPort: 8080}
  - {name: dns, port: 53, protocol: UDP, targetPort: udp}""")
    vip = svc["spec"]["clusterIP"]
    client = clients(proxy)[proxy.nodes[1]]
    wait_for(lambda: answered(proxy, client, f"http://{vip}/hostname"), "port 80 to answer", 30)
    assert set(proxy.fetch(client, f"http://{vip}:8000/hostname", 20)) <= all_backends(backends)
    answers = proxy.udp(client, vip, 53, n=20)
    assert set(answers) <= all_backends(backends) and len(set(answers)) > 1, answers


def test_node_port_from_the_external_client_on_both_nodes(
    cluster: Cluster, proxy: Proxy, backends: dict[str, list[str]]
) -> None:
    svc = apply_service(cluster, "nodeport", "type: NodePort\n  ports: [{name: http, port: 80, targetPort: http}]")
    port = svc["spec"]["ports"][0]["nodePort"]
    for node in proxy.nodes:
        url = f"http://{proxy.node_ip(node)}:{port}/hostname"
        wait_for(lambda u=url: answered(proxy, "external", u), f"node port on {node}", 30)
        proxy.every_answer("external", url, all_backends(backends))


def test_no_endpoints_and_unused_ports_are_rejected(cluster: Cluster, proxy: Proxy, web: str) -> None:
    svc = apply_service(cluster, "empty", "ports: [{name: http, port: 80}]", selector="{app: nothing}")
    client = clients(proxy)[proxy.nodes[0]]
    url = f"http://{svc['spec']['clusterIP']}/"
    wait_for(lambda: proxy.fetch(client, url) == ["refused"], "connection refused for no endpoints", 30)
    started = time.monotonic()
    assert proxy.fetch(client, url, 3) == ["refused"] * 3
    assert time.monotonic() - started < 8, "a reject answers at once, it does not time out"
    assert proxy.fetch(client, f"http://{web}:81/") == ["refused"]  # a port the Service does not have


def test_session_affinity_client_ip_sticks(cluster: Cluster, proxy: Proxy, backends: dict) -> None:
    svc = apply_service(cluster, "sticky", """sessionAffinity: ClientIP
  ports: [{name: http, port: 80, targetPort: http}]""")
    url = f"http://{svc['spec']['clusterIP']}/hostname"
    for node, client in clients(proxy).items():
        wait_for(lambda c=client: answered(proxy, c, url), f"sticky from {node}", 30)
        answers = proxy.fetch(client, url, 20)
        assert len(set(answers)) == 1 and HOSTNAME.match(answers[0]), f"from {node}: {answers}"


def test_a_pod_reaches_itself_through_its_service(cluster: Cluster, proxy: Proxy, backends: dict) -> None:
    """Hairpin: the only endpoint of a Service connects to the Service and gets its own answer. The
    connection is masqueraded (the pod sees a node address, not its own), else the reply would go
    straight back inside the pod without being un-DNATed and the connection would never open."""
    node = proxy.nodes[1]
    cluster.apply(pod_manifest(NS, "loner", node, labels="{app: loner}", args="[netexec, --http-port=8080]"))
    try:
        vip = apply_service(cluster, "loner", "ports: [{name: http, port: 80, targetPort: 8080}]",
                            selector="{app: loner}")["spec"]["clusterIP"]
        wait_for(lambda: proxy.fetch(f"{NS}/loner", f"http://{vip}/hostname")[0] == "loner",
                 "the pod answering itself through its Service", 60)
        pod_ip = cluster.get("pod", "-n", NS, "loner")["status"]["podIP"]
        seen = {a.rsplit(":", 1)[0] for a in proxy.fetch(f"{NS}/loner", f"http://{vip}/clientip", 5)}
        assert len(seen) == 1 and pod_ip not in seen, (pod_ip, seen)
    finally:
        cluster.kubectl("delete", "pod,service", "-n", NS, "loner", "--wait=false", check=False)


def test_external_traffic_policy_local_keeps_the_client_address_and_local_endpoints(
    cluster: Cluster, proxy: Proxy, backends: dict[str, list[str]]
) -> None:
    svc = apply_service(cluster, "local", """type: NodePort
  externalTrafficPolicy: Local
  ports: [{name: http, port: 80, targetPort: http}]""")
    port = svc["spec"]["ports"][0]["nodePort"]
    for node in proxy.nodes:
        base = f"http://{proxy.node_ip(node)}:{port}"
        wait_for(lambda b=base: answered(proxy, "external", f"{b}/hostname"), f"local node port on {node}", 30)
        assert set(proxy.fetch("external", f"{base}/hostname", 30)) == set(backends[node])
        client_ips = {a.rsplit(":", 1)[0] for a in proxy.fetch("external", f"{base}/clientip", 5)}
        assert client_ips == {proxy.external_ip}


def test_local_policy_health_check_node_port_answers_like_kube_proxy(cluster: Cluster, proxy: Proxy) -> None:
    worker = proxy.nodes[1]
    cluster.apply(pod_manifest(NS, "solo", worker, labels="{app: solo}",
                               args="[netexec, --http-port=8080, --udp-port=8081]"))
    svc = apply_service(cluster, "lb-local", """type: LoadBalancer
  externalTrafficPolicy: Local
  ports: [{name: http, port: 80, targetPort: 8080}]""", selector="{app: solo}")
    hc, port = svc["spec"]["healthCheckNodePort"], svc["spec"]["ports"][0]["nodePort"]
    wait_for(lambda: cluster.condition(cluster.get("pod", "-n", NS, "solo"), "Ready") == "True", "solo ready", 60)

    def health(node: str, expected: int) -> str | None:
        code, body = proxy.curl("external", f"http://{proxy.node_ip(node)}:{hc}/")
        return body if code == (200 if expected else 503) and f'"localEndpoints": {expected},' in body else None

    for node in proxy.nodes:
        expected = 1 if node == worker else 0
        body = wait_for(lambda n=node, e=expected: health(n, e), f"health check on {node}", 30)
        assert json.loads(body) == {"service": {"namespace": NS, "name": "lb-local"}, "localEndpoints": expected,
                                    "serviceProxyHealthy": True}
        assert body.startswith('{\n\t"service": {\n\t\t"namespace"')  # kube-proxy's layout, tabs and all
    assert proxy.fetch("external", f"http://{proxy.node_ip(worker)}:{port}/clientip")[0].startswith(
        proxy.external_ip + ":")
    # the node without a local endpoint drops (no reject: a load balancer must just fail over); until its
    # agent has seen the endpoint on the worker, the Service has none at all and is rejected, as kube-proxy does
    def dropped() -> bool:
        got = proxy.fetch("external", f"http://{proxy.node_ip(proxy.nodes[0])}:{port}/hostname")
        assert got == ["timeout"], got
        return True
    wait_for(dropped, f"a drop on {proxy.nodes[0]}", 30)


def test_udp_client_follows_an_endpoint_change(cluster: Cluster, proxy: Proxy, backends: dict) -> None:
    """A UDP client that keeps sending from one source port reaches the new backend once the old one
    is gone: the agent deletes the conntrack entry that still pointed at the old one."""
    a, b = proxy.nodes
    cluster.apply(pod_manifest(NS, "udp-a", b, labels="{app: udp}", args="[netexec, --http-port=8080, "
                               "--udp-port=8081]"))
    svc = apply_service(cluster, "udp", "ports: [{name: dns, port: 53, protocol: UDP, targetPort: 8081}]",
                        selector="{app: udp}")
    cluster.apply(pod_manifest(NS, "udp-stream", a, program="udp_stream",
                               env={"TARGET": svc["spec"]["clusterIP"], "PORT": "53"}))
    wait_for(lambda: "udp-a" in proxy.logs(f"{NS}/udp-stream")[-3:], "the stream to reach udp-a", 60)
    cluster.apply(pod_manifest(NS, "udp-b", b, labels="{app: udp}", args="[netexec, --http-port=8080, "
                               "--udp-port=8081]"))
    wait_for(lambda: cluster.condition(cluster.get("pod", "-n", NS, "udp-b"), "Ready") == "True", "udp-b", 60)
    cluster.kubectl("delete", "pod", "-n", NS, "udp-a", "--wait=true", "--timeout=60s")
    wait_for(lambda: proxy.logs(f"{NS}/udp-stream")[-3:] == ["udp-b"] * 3, "the stream to reach udp-b", 30)


def test_rules_survive_an_agent_restart_and_established_connections_live_on(
    cluster: Cluster, proxy: Proxy, web: str
) -> None:
    node, vip = proxy.nodes[0], web
    cluster.apply(pod_manifest(NS, "keepalive", node, program="http_keepalive", env={"TARGET": vip}))
    wait_for(lambda: len(proxy.logs(f"{NS}/keepalive")) >= 3, "the kept-alive connection", 60)
    old = proxy.agent_pods()
    cluster.kubectl("delete", "pod", "-n", AGENT_NS, *old.values(), "--wait=true", "--timeout=60s")
    during = proxy.fetch(clients(proxy)[node], f"http://{vip}/hostname", 3)  # no agent may be running here
    assert all(HOSTNAME.match(a) for a in during), during
    wait_for(lambda: len(proxy.agent_pods()) == 2 and set(proxy.agent_pods().values()).isdisjoint(old.values()),
             "new agent pods", 60)
    proxy.wait_agents_ready()
    time.sleep(2)
    lines = proxy.logs(f"{NS}/keepalive")
    assert lines and all(line.startswith("ok ") for line in lines), [x for x in lines if not x.startswith("ok ")]
    assert len({line.split()[-1] for line in lines}) == 1, "the connection was re-opened"
    assert answered(proxy, clients(proxy)[node], f"http://{vip}/hostname")


def test_a_removed_table_is_restored_at_the_next_periodic_check(proxy: Proxy, web: str) -> None:
    node, url = proxy.nodes[1], f"http://{web}/hostname"
    client = clients(proxy)[node]
    assert answered(proxy, client, url)
    before = proxy.metric(node, 'knet_proxy_errors_total{kind="table-missing"}')

    def tables() -> set[str]:
        return set(proxy.in_node(node, "nft", "list", "tables").stdout.splitlines())

    ours = {t for t in tables() if t.startswith("table inet knet-proxy")}
    shard = sorted(ours - {"table inet knet-proxy"})[0]  # the main table and a shard holding DNAT rules
    out = proxy.in_node(node, "nft", "-f", "-", stdin=f"delete table inet knet-proxy\ndelete {shard}\n")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: ours <= tables(), "the tables back", 30)
    assert answered(proxy, client, url)
    assert proxy.metric(node, 'knet_proxy_errors_total{kind="table-missing"}') == before + 1


def test_bad_services_get_an_event_and_the_rest_keeps_working(cluster: Cluster, proxy: Proxy, web: str) -> None:
    ext = f"{proxy.layout.underlay_v4[200]}"
    for name, extra in (("claim-a", f'externalIPs: ["{ext}"]'), ("claim-b", f'externalIPs: ["{ext}"]'),
                        ("v6-external", 'externalIPs: ["fd00::1234"]')):
        apply_service(cluster, name, f"{extra}\n  ports: [{{name: http, port: 80, targetPort: http}}]")

    def events(name: str) -> list[dict]:
        items = cluster.get("events", "-n", NS, "--field-selector", f"involvedObject.name={name}")["items"]
        return [e for e in items if e["reason"] == "ProxyProblem"]

    # the older Service keeps the address (both may be created within one second: then the lower UID)
    older, newer = sorted(("claim-a", "claim-b"), key=lambda n: age(cluster.get("service", "-n", NS, n)))
    claim = wait_for(lambda: events(newer), f"an Event on {newer}", 30)
    assert f"externalIP {ext} port http/TCP is already used by Service {NS}/{older}" in claim[0]["message"]
    v6 = wait_for(lambda: events("v6-external"), "an Event on v6-external", 30)
    assert "externalIP fd00::1234 ignored" in v6[0]["message"]
    time.sleep(3)
    assert len(events(newer)) == 1 and len(events("v6-external")) == 1, "one Event per problem, not per node"
    assert events(older) == []
    client = clients(proxy)[proxy.nodes[0]]
    for name in (newer, "v6-external"):  # the bad parts are skipped, the rest is programmed
        vip = cluster.get("service", "-n", NS, name)["spec"]["clusterIP"]
        assert answered(proxy, client, f"http://{vip}/hostname"), name
    assert proxy.metric(proxy.nodes[0], 'knet_proxy_objects_with_problems{kind="Service"}') >= 2


def test_the_agent_writes_nothing_to_the_objects_it_watches(cluster: Cluster, proxy: Proxy, web: str) -> None:
    objects = [cluster.get("service", "-n", NS, "web"), cluster.get("node", proxy.nodes[0]),
               *cluster.get("endpointslices", "-n", NS, "-l", "kubernetes.io/service-name=web")["items"]]
    for obj in objects:
        md = obj["metadata"]
        assert not md.get("finalizers"), md
        assert not [k for k in md.get("annotations", {}) if "kopf" in k], md["annotations"]


def test_metrics_and_health_endpoints(proxy: Proxy, web: str) -> None:
    for node in proxy.nodes:
        health = json.loads(proxy.agent_get(node, "/healthz"))
        assert health["nodeEligible"] is True and health["lastUpdated"]
        count = proxy.metric(node, 'knet_proxy_sync_proxy_rules_duration_seconds_count{kind="full"}')
        total = proxy.metric(node, 'knet_proxy_sync_proxy_rules_duration_seconds_sum{kind="full"}')
        inc = proxy.metric(node, 'knet_proxy_sync_proxy_rules_duration_seconds_count{kind="incremental"}')
        inc_total = proxy.metric(node, 'knet_proxy_sync_proxy_rules_duration_seconds_sum{kind="incremental"}')
        latency = proxy.metric(node, "knet_proxy_network_programming_duration_seconds_sum")
        latency_n = proxy.metric(node, "knet_proxy_network_programming_duration_seconds_count")
        assert count >= 1 and proxy.metric(node, "knet_proxy_services") >= 5
        assert proxy.metric(node, "knet_proxy_sync_proxy_rules_last_timestamp_seconds") > time.time() - 3600
        print(f"\n{node}: full syncs {count:.0f} (mean {1000 * total / count:.1f} ms), incremental "
              f"{inc:.0f} (mean {1000 * inc_total / max(inc, 1):.1f} ms), programming latency mean "
              f"{1000 * latency / max(latency_n, 1):.0f} ms over {latency_n:.0f} changes")
    node_ip = proxy.node_ip(proxy.nodes[0])  # metrics on the node's loopback only, as kube-proxy's; health open
    assert proxy.curl("external", f"http://{node_ip}:{METRICS_PORT}/metrics")[0] == 0
    assert proxy.curl("external", f"http://{node_ip}:{HEALTH_PORT}/healthz")[0] == 200


def test_api_server_unreachable_keeps_the_last_rules(cluster: Cluster, proxy: Proxy, web: str) -> None:
    server = cluster.config("server")
    bad = server.rsplit(":", 1)[0] + ":6444"  # nothing listens there: the API server is "gone"
    cluster.kubectl("set", "env", "-n", AGENT_NS, "daemonset/knet-agent", f"KNET_API_SERVER={bad}")
    try:
        def lost() -> str | None:
            pods = cluster.pods(AGENT_NS, "app=knet-agent")
            return next((p["spec"]["nodeName"] for p in pods if p["status"].get("phase") == "Running"
                         and not p["metadata"].get("deletionTimestamp")
                         and any(e.get("value") == bad for e in p["spec"]["containers"][0]["env"])), None)

        node = wait_for(lost, "an agent without API server", 90)
        time.sleep(5)  # it has started and keeps trying
        assert proxy.agent_get(node, "/readyz").strip() != "ok"
        answers = proxy.fetch(clients(proxy)[node], f"http://{web}/hostname", 10)
        assert all(HOSTNAME.match(a) for a in answers), answers
    finally:
        cluster.kubectl("set", "env", "-n", AGENT_NS, "daemonset/knet-agent", f"KNET_API_SERVER={server}")
    wait_for(lambda: all(p["spec"]["containers"][0]["env"][1]["value"] == server
                         for p in cluster.pods(AGENT_NS, "app=knet-agent")), "the agents back on the API", 120)
    proxy.wait_agents_ready()


def test_removing_the_daemonset_breaks_nothing_else(
    cluster: Cluster, proxy: Proxy, backends: dict[str, list[str]], web: str
) -> None:
    vip = web
    client = clients(proxy)[proxy.nodes[0]]
    cluster.kubectl("delete", "daemonset", "-n", AGENT_NS, "knet-agent", "--wait=true", "--timeout=60s")
    # gone, not just terminating: an agent still in its grace period would restore the table removed below
    wait_for(lambda: not cluster.pods(AGENT_NS, "app=knet-agent"), "the agent pods gone", 60)
    assert answered(proxy, client, f"http://{vip}/hostname"), "the last rules stay, as with kube-proxy"
    proxy.cleanup_rules()
    for node in proxy.nodes:
        assert "knet-proxy" not in proxy.in_node(node, "nft", "list", "tables").stdout
    pod_ip = cluster.get("pod", "-n", NS, backends[proxy.nodes[1]][0])["status"]["podIP"]
    assert answered(proxy, client, f"http://{pod_ip}:8080/hostname"), "pod to pod across nodes"
    assert all(cluster.condition(n, "Ready") == "True" for n in cluster.get("nodes")["items"])
