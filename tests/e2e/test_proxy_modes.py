"""The Service proxy beyond the basics, end to end: NodeNetworkStatus, LoadBalancer addresses answered on
the underlay (one node each, loadBalancerSourceRanges), zero failed requests during a rolling update,
bad input, and iptables mode chosen (and left) at runtime through ClusterNetworkConfig, including a
failed transaction that keeps the previous rules.

The agent runs as a DaemonSet (no kube-proxy); the CRDs are installed first (the agent reads
ClusterNetworkConfig at start and watches it).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import ipaddress
import json
import re
import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.apps import app_path
from tests.e2e.harness import CLUSTER, Cluster, knet, wait_for
from tests.e2e.proxy_helpers import AGNHOST, Proxy, deployed_agent, pod_manifest

NS = "proxy-modes"
CRDS = ("clusternetworkconfigs.knet.io", "nodenetworkstatuses.knet.io")
HOSTNAME = re.compile(r"^(netexec|roll)-[a-z0-9]+-[a-z0-9]+$")




@pytest.fixture(scope="module")
def proxy(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Proxy]:
    with deployed_agent(cluster, request, CRDS) as px:
        yield px


def roll_manifest(replicas: int = 4) -> str:
    """netexec behind a readiness probe, serving 3 s after SIGTERM (a preStop sleep's job)."""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: roll, namespace: {NS}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: roll}}}}
  template:
    metadata: {{labels: {{app: roll}}}}
    spec:
      containers:
      - name: netexec
        image: {AGNHOST}
        args: [netexec, --http-port=8080, --delay-shutdown=3]
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /readyz, port: 8080}}
          periodSeconds: 1
"""


def service(name: str, spec: str, selector: str = "{app: roll}") -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {NS}}}
spec:
  selector: {selector}
  {spec}
"""


def deploy_backends(cluster: Cluster, proxy: Proxy, replicas: int) -> list[str]:
    """`roll` pods behind the ClusterIP Service `web` (dual-stack where the cluster is) and a client pod
    on each node: the names of the ready `roll` pods."""
    cluster.kubectl("create", "namespace", NS)
    wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", NS, check=False).startswith("NAME"),
             "default service account", 30)
    web = "ipFamilyPolicy: PreferDualStack\n  ports: [{name: http, port: 80, targetPort: http}]"
    cluster.apply(roll_manifest(replicas) + "---" + service("web", web)
                  + "".join("---" + pod_manifest(NS, f"client-{i}", node) for i, node in enumerate(proxy.nodes)))
    wait_for(lambda: len(ready_pods(cluster, "app=roll")) == replicas and len(ready_pods(cluster, "!app")) == 2,
             f"{replicas} roll pods and the clients ready", 120)
    return ready_pods(cluster, "app=roll")


@pytest.fixture(scope="module")
def backends(cluster: Cluster, proxy: Proxy) -> Iterator[list[str]]:
    yield deploy_backends(cluster, proxy, 4)
    cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def ready_pods(cluster: Cluster, selector: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in cluster.pods(NS, selector) if cluster.condition(p, "Ready") == "True"
                  and not p["metadata"].get("deletionTimestamp"))


def client(proxy: Proxy, i: int = 0) -> str:
    return f"{NS}/client-{i}"


def vip(cluster: Cluster, name: str) -> str:
    return cluster.get("service", "-n", NS, name)["spec"]["clusterIP"]


def nns(cluster: Cluster, node: str) -> dict:
    return cluster.get("nodenetworkstatus", node).get("status", {})


def nns_when(cluster: Cluster, node: str, ok: Callable[[dict], bool], what: str) -> dict:
    """Wait until the node's NodeNetworkStatus satisfies `ok`; return it."""
    return wait_for(lambda: (st := nns(cluster, node)) and ok(st) and st, f"{what} on {node}", 30)


def condition(status: dict, ctype: str) -> str | None:
    return next((c["status"] for c in status.get("conditions", []) if c["type"] == ctype), None)


def answers(proxy: Proxy, where: str, url: str, n: int) -> set[str]:
    return set(proxy.fetch(where, url, n))


def test_node_network_status_shows_counts_and_conditions(cluster: Cluster, proxy: Proxy, backends: list[str]) -> None:
    web = vip(cluster, "web")
    wait_for(lambda: answers(proxy, client(proxy), f"http://{web}/hostname", 1) <= set(backends), "web answers", 30)
    for node in proxy.nodes:
        st = nns_when(cluster, node, lambda s: s.get("counts", {}).get("endpoints", 0) >= 4, "the status")
        assert condition(st, "Ready") == "True" and condition(st, "RulesApplied") == "True", st
        assert st["proxyMode"] == "nftables" and st["counts"]["services"] >= 2 and st["counts"]["rules"] > 20, st
        assert st["lastSyncTime"] and st["lastFullSyncTime"] and st["lastSyncDuration"].endswith("s"), st
        owner = cluster.get("nodenetworkstatus", node)["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "Node" and owner["name"] == node
    table = cluster.kubectl("get", "nns")
    assert table.split("\n")[0].split() == ["NAME", "READY", "MODE", "SERVICES", "ENDPOINTS", "POLICIES", "RULES",
                                            "LAST-SYNC", "DURATION", "AGE"], table
    assert all(re.search(rf"^{n}\s+True\s+nftables\s+\d+\s+\d+\s+", table, re.M) for n in proxy.nodes), table


def lb_service(cluster: Cluster, name: str, ips: list[str], ranges: list[str], selector: str = "{app: roll}",
               policy: str = "Cluster", target: str = "http") -> list[str]:
    """A LoadBalancer Service with `ips` written into its status (as the pool controller would): their URLs."""
    cluster.apply(service(name, f"""type: LoadBalancer
  ipFamilyPolicy: PreferDualStack
  externalTrafficPolicy: {policy}
  loadBalancerSourceRanges: {json.dumps(ranges)}
  ports: [{{name: http, port: 80, targetPort: {target}}}]""", selector))
    patch = json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}})
    cluster.kubectl("patch", "service", "-n", NS, name, "--subresource=status", "--type=merge", "-p", patch)
    return [f"http://{ip if ':' not in ip else f'[{ip}]'}/hostname" for ip in ips]


def underlay_mac(proxy: Proxy, node: str) -> str:
    """The MAC of the node's link towards the external client."""
    link = json.loads(proxy.in_node(node, "ip", "-j", "route", "get", proxy.external_ip).stdout)[0]["dev"]
    return json.loads(proxy.in_node(node, "ip", "-j", "link", "show", link).stdout)[0]["address"]


def lb_owners(proxy: Proxy, ip: str) -> list[str]:
    """The nodes that answer ARP or neighbour solicitations for `ip` (a proxy neighbour entry)."""
    return [n for n in proxy.nodes
            if re.search(rf"^{re.escape(ip)} ", proxy.in_node(n, "ip", "neigh", "show", "proxy").stdout, re.M)]


def external_neighbour(proxy: Proxy, ip: str) -> str:
    """The external client's neighbour entry for `ip`."""
    return proxy.in_external("ip", "neigh", "show", ip).stdout


def test_lb_addresses_answer_from_one_node_and_only_to_allowed_sources(
    cluster: Cluster, proxy: Proxy, backends: list[str]
) -> None:
    pool = ipaddress.ip_network(proxy.layout.lb_pool[0])
    allowed_ip, denied_ip = str(pool[10]), str(pool[11])
    [allowed] = lb_service(cluster, "lb-allowed", [allowed_ip], [f"{proxy.external_ip}/32"])
    [denied] = lb_service(cluster, "lb-denied", [denied_ip], ["10.0.0.0/8"])
    wait_for(lambda: answers(proxy, "external", allowed, 30) == set(backends), "the LB address, every endpoint", 60)
    # the denied address's status may land a sync later than the allowed one's
    wait_for(lambda: lb_owners(proxy, denied_ip), "an owner of the denied address", 30)
    for ip in (allowed_ip, denied_ip):
        assert len(lb_owners(proxy, ip)) == 1, f"{ip}: answered by {lb_owners(proxy, ip)}"
    assert proxy.fetch("external", denied) == ["timeout"], "a source outside the ranges is dropped"
    # the client's neighbour entry points at the elected node's underlay MAC
    neigh = external_neighbour(proxy, allowed_ip)
    [owner] = lb_owners(proxy, allowed_ip)
    assert underlay_mac(proxy, owner) in neigh, (neigh, owner)
    cluster.kubectl("delete", "service", "-n", NS, "lb-allowed", "lb-denied")
    wait_for(lambda: not lb_owners(proxy, allowed_ip) and not lb_owners(proxy, denied_ip),
             "the addresses no longer announced", 30)


@pytest.mark.usefixtures("backends")  # the namespace
def test_a_local_lb_address_is_announced_by_the_node_of_its_endpoint(cluster: Cluster, proxy: Proxy) -> None:
    """externalTrafficPolicy Local: only a node with a ready endpoint announces the address, even where
    the hash alone would pick another node; the announcement follows the endpoint to another node, and
    the new node's gratuitous ARP moves the client's neighbour entry to it at once (without it, the entry
    would keep the old node's MAC until it is next used and found unreachable); the client hears the
    gratuitous ARP requests and replies repeated over seconds, so one lost frame does not strand it."""
    ip = str(ipaddress.ip_network(proxy.layout.lb_pool[0])[12])
    by_hash = min(proxy.nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).hexdigest())  # MetalLB's rule
    other = next(n for n in proxy.nodes if n != by_hash)

    def endpoint_on(node: str, pod: str) -> None:
        cluster.apply(pod_manifest(NS, pod, node, labels="{app: local-lb}", args="[netexec, --http-port=8080]"))
        wait_for(lambda: ready_pods(cluster, "app=local-lb") == [pod], f"{pod} the only ready endpoint", 60)

    endpoint_on(other, "local-a")
    [url] = lb_service(cluster, "lb-local", [ip], [], "{app: local-lb}", "Local", "8080")
    wait_for(lambda: lb_owners(proxy, ip) == [other], f"{ip} announced by {other} alone (the hash picks {by_hash})", 30)
    assert proxy.fetch("external", url) == ["local-a"]
    assert underlay_mac(proxy, other) in external_neighbour(proxy, ip)
    mac = underlay_mac(proxy, by_hash)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # the client listens while the endpoint moves
        heard = pool.submit(proxy.in_external, "python3", app_path("gratuitous_arps"), ip, mac, "60", timeout=90)
        cluster.kubectl("delete", "pod", "-n", NS, "local-a", "--wait=true", "--timeout=60s")
        endpoint_on(by_hash, "local-b")
        wait_for(lambda: lb_owners(proxy, ip) == [by_hash], f"{ip} announced by {by_hash} alone", 30)
        wait_for(lambda: mac in external_neighbour(proxy, ip), f"the client's entry for {ip} at {by_hash}", 3)
        assert proxy.fetch("external", url) == ["local-b"]
        frames = [line.split() for line in heard.result().stdout.splitlines()]
    # MetalLB's timing: requests and replies, repeated every 1.1 s for 5 s (the first may be missed here)
    assert {op for _, op in frames} == {"1", "2"} and float(frames[-1][0]) >= 3, frames
    cluster.kubectl("delete", "service", "-n", NS, "lb-local")
    cluster.kubectl("delete", "pod", "-n", NS, "local-b", "--wait=false")
    wait_for(lambda: not lb_owners(proxy, ip), f"{ip} no longer announced", 30)


def test_no_failed_request_during_a_rolling_update(cluster: Cluster, proxy: Proxy, backends: list[str]) -> None:
    url = f"http://{vip(cluster, 'web')}/hostname"
    loads = [f"load-{i}" for i in range(len(proxy.nodes))]
    cluster.apply("---".join(pod_manifest(NS, name, node, program="http_load", env={"URL": url})
                             for name, node in zip(loads, proxy.nodes, strict=True)))
    wait_for(lambda: all(any(x.startswith("ok ") for x in proxy.logs(f"{NS}/{p}")) for p in loads), "load", 60)
    started = time.monotonic()
    cluster.kubectl("rollout", "restart", "deployment", "roll", "-n", NS)
    cluster.kubectl("rollout", "status", "deployment", "roll", "-n", NS, "--timeout=90s")
    took = time.monotonic() - started
    time.sleep(4)  # the last old pods finish their 3 s of grace
    logs = {p: proxy.logs(f"{NS}/{p}") for p in loads}
    cluster.kubectl("delete", "pod", "-n", NS, *loads, "--wait=false")
    assert not set(ready_pods(cluster, "app=roll")) & set(backends), "every backend was replaced"
    total = 0
    for pod, lines in logs.items():
        assert [x for x in lines if not x.startswith("ok ")] == [], f"{pod}: failed requests during the rollout"
        total += int(lines[-1].split()[1])
    assert total > 100, logs
    print(f"\nrolling update of 4 backends in {took:.0f}s under load from {len(loads)} clients: "
          f"about {total} requests, 0 failed")
    backends[:] = wait_for(lambda: len(p := ready_pods(cluster, "app=roll")) == 4 and p, "4 new pods", 60)


def test_bad_endpoint_slice_gets_an_event_and_the_rest_keeps_working(
    cluster: Cluster, proxy: Proxy, backends: list[str]
) -> None:
    many = ", ".join(f"{{name: p{i}, port: {1000 + i}, targetPort: 8080}}" for i in range(300))
    cluster.apply(service("many", f"ports: [{many}]") + "---" + service("odd", "ports: [{name: http, port: 80}]",
                                                                         selector="{app: nothing}") + f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: odd-1, namespace: {NS}, labels: {{kubernetes.io/service-name: odd}}}}
addressType: IPv4
endpoints: [{{addresses: ["10.244.1.77"], conditions: {{ready: true}}}}]
ports: [{{name: http, port: 70000, protocol: TCP}}]
""")

    def events() -> list[dict]:
        items = cluster.get("events", "-n", NS, "--field-selector", "involvedObject.name=odd-1")["items"]
        return [e for e in items if e["reason"] == "ProxyProblem"]

    event = wait_for(events, "an Event on the odd EndpointSlice", 30)
    assert "70000" in event[0]["message"], event
    # the Event may come from the other node's agent; this one counts the slice at its own next sync
    wait_for(lambda: proxy.metric(proxy.nodes[0], 'knet_proxy_objects_with_problems{kind="EndpointSlice"}') >= 1,
             f"the problem counted by the agent on {proxy.nodes[0]}", 10)
    many_vip = vip(cluster, "many")
    wait_for(lambda: proxy.fetch(client(proxy), f"http://{many_vip}:1299/hostname")[0] in backends,
             "the 300th port of `many`", 30)
    assert proxy.fetch(client(proxy), f"http://{vip(cluster, 'odd')}/")[0] == "refused", "odd has no usable endpoint"
    assert answers(proxy, client(proxy), f"http://{vip(cluster, 'web')}/hostname", 3) <= set(backends)
    st = nns_when(cluster, proxy.nodes[0], lambda s: condition(s, "ObjectProblems") == "True", "ObjectProblems")
    assert any(e.get("object") == f"EndpointSlice {NS}/odd-1" for e in st["errors"]), st["errors"]
    cluster.kubectl("delete", "service", "-n", NS, "many", "odd")


def set_mode(cluster: Cluster, proxy: Proxy, mode: str, masquerade_all: bool = False) -> None:
    cluster.apply(f"""
apiVersion: knet.io/v1alpha1
kind: ClusterNetworkConfig
metadata: {{name: default}}
spec: {{proxy: {{mode: {mode}, masqueradeAll: {str(masquerade_all).lower()}, minSyncPeriod: 500ms}}}}
""")
    for node in proxy.nodes:
        wait_for(lambda n=node: nns(cluster, n).get("proxyMode") == mode, f"{node} in {mode} mode", 30)


def iptables_save(proxy: Proxy, node: str) -> str:
    return proxy.in_node(node, "iptables-save").stdout


def test_iptables_mode_at_runtime_and_back(cluster: Cluster, proxy: Proxy, backends: list[str]) -> None:
    web, node = vip(cluster, "web"), proxy.nodes[0]
    cluster.apply(service("np", "type: NodePort\n  ports: [{name: http, port: 80, targetPort: http}]")
                  + "---" + service("empty", "ports: [{name: http, port: 80}]", selector="{app: nothing}"))
    pod_ip = cluster.get("pod", "-n", NS, "client-0")["status"]["podIP"]
    assert proxy.fetch(client(proxy), f"http://{web}/clientip")[0].startswith(f"{pod_ip}:"), "no SNAT by default"
    set_mode(cluster, proxy, "iptables", masquerade_all=True)
    for n in proxy.nodes:
        assert "knet-proxy" not in proxy.in_node(n, "nft", "list", "tables").stdout, "the nftables rules are gone"
        rules = iptables_save(proxy, n)
        assert "-j KNET-SERVICES" in rules
        seps = [r for r in rules.splitlines() if r.startswith("-A KNET-SVC-") and f'"{NS}/web:http"' in r]
        assert len(seps) == len(backends) and all("-j KNET-SEP-" in r for r in seps), seps
    proxy.every_answer(client(proxy, 0), f"http://{web}/hostname", set(backends))
    assert answers(proxy, client(proxy, 1), f"http://{web}/hostname", 3) <= set(backends)
    port = cluster.get("service", "-n", NS, "np")["spec"]["ports"][0]["nodePort"]
    for n, count in zip(proxy.nodes, (30, 1), strict=True):  # spread via one node, reachable via the other
        url = f"http://{proxy.node_ip(n)}:{port}/hostname"
        wait_for(lambda u=url, c=count: (a := answers(proxy, "external", u, c)) <= set(backends)
                 and len(a) >= min(c, len(backends)), f"node port on {n}", 60)
    assert proxy.fetch(client(proxy), f"http://{vip(cluster, 'empty')}/") == ["refused"]
    assert proxy.fetch(client(proxy), f"http://{web}:81/") == ["refused"]
    assert not proxy.fetch(client(proxy), f"http://{web}/clientip")[0].startswith(f"{pod_ip}:"), "masqueradeAll"

    # someone else's rule jumps to the chain of `np`: deleting `np` cannot commit, nothing changes
    chain = next(line.split()[1] for line in iptables_save(proxy, node).splitlines()
                 if line.startswith("-A KNET-SVC-") and f"{NS}/np:http" in line)
    foreign = ["-t", "nat", "-A", "OUTPUT", "-d", str(proxy.layout.underlay_v4[199]), "-j", chain]
    assert proxy.in_node(node, "iptables", *foreign).returncode == 0
    before = proxy.metric(node, 'knet_proxy_errors_total{kind="iptables"}')
    cluster.kubectl("delete", "service", "-n", NS, "np")
    st = nns_when(cluster, node, lambda s: condition(s, "RulesApplied") == "False", "the failure reported")
    assert "busy" in st["errors"][0]["message"].lower() and st["syncErrors"] >= 1, st
    assert proxy.metric(node, 'knet_proxy_errors_total{kind="iptables"}') > before
    assert chain in iptables_save(proxy, node), "the previous rules stay"
    assert answers(proxy, client(proxy), f"http://{web}/hostname", 10) <= set(backends)
    foreign[2] = "-D"
    assert proxy.in_node(node, "iptables", *foreign).returncode == 0
    wait_for(lambda: chain not in iptables_save(proxy, node), "the next sync to succeed", 30)
    wait_for(lambda: condition(nns(cluster, node), "RulesApplied") == "True", "RulesApplied again", 30)

    set_mode(cluster, proxy, "nftables")
    for n in proxy.nodes:
        assert "KNET" not in iptables_save(proxy, n) and "KNET" not in proxy.in_node(n, "ip6tables-save").stdout
        assert "knet-proxy" in proxy.in_node(n, "nft", "list", "tables").stdout
    assert answers(proxy, client(proxy, 1), f"http://{web}/hostname", 3) <= set(backends)
    assert proxy.fetch(client(proxy), f"http://{web}/clientip")[0].startswith(f"{pod_ip}:"), "masqueradeAll off"
    cluster.kubectl("delete", "clusternetworkconfig", "default")


@pytest.fixture(scope="module")
def dual(request: pytest.FixtureRequest) -> Iterator[tuple[Proxy, list[str]]]:
    """A dual-stack devcluster of its own with the agent and 2 backends."""
    name = f"{CLUSTER[:11]}6"
    proc = knet("devcluster", "up", "--name", name, "--nodes", "2", "--ip-family", "dual", timeout=300)
    cluster = Cluster(name, proc.stdout.strip().splitlines()[-1].removeprefix("KUBECONFIG="), {})
    try:
        with deployed_agent(cluster, request, CRDS) as px:
            yield px, deploy_backends(cluster, px, 2)
    finally:
        knet("devcluster", "down", "--name", name, timeout=120)


def test_dual_stack_services_in_both_modes(dual: tuple[Proxy, list[str]]) -> None:
    """IPv6 ClusterIP traffic from a pod (on one node per mode) and IPv6 and IPv4 LoadBalancer addresses
    from the external client (neighbour discovery, ARP), in nftables mode and then in iptables mode."""
    px, backends = dual
    cluster = px.cluster
    _, v6 = cluster.get("service", "-n", NS, "web")["spec"]["clusterIPs"]
    assert ":" in v6, v6
    pools = [ipaddress.ip_network(p) for p in px.layout.lb_pool]
    lb4, lb6 = lb_service(cluster, "lb", [str(pools[0][12]), str(pools[1][12])],
                          [f"{ip}/{32 if ':' not in ip else 128}" for ip in px.layout.external_ips])
    for i, mode in enumerate(("nftables", "iptables")):
        set_mode(cluster, px, mode)
        px.every_answer(client(px, i), f"http://[{v6}]/hostname", set(backends))
        for url in (lb6, lb4):
            wait_for(lambda u=url: answers(px, "external", u, 12) == set(backends), f"{url} ({mode})", 60)
    assert "-j KNET-SERVICES" in px.in_node(px.nodes[0], "ip6tables-save").stdout
    # a takeover of the IPv6 address: its node is excluded from load balancers, the other one answers
    # now, and its unsolicited Neighbor Advertisement moves the client's entry to it at once
    ip6 = str(pools[1][12])
    [owner] = lb_owners(px, ip6)
    assert underlay_mac(px, owner) in external_neighbour(px, ip6)
    cluster.kubectl("label", "node", owner, "node.kubernetes.io/exclude-from-external-load-balancers=")
    [heir] = [n for n in px.nodes if n != owner]
    wait_for(lambda: lb_owners(px, ip6) == [heir], f"{ip6} announced by {heir}", 30)
    mac = underlay_mac(px, heir)
    wait_for(lambda: mac in external_neighbour(px, ip6), f"the client's entry for {ip6} at {heir}", 3)
    px.every_answer("external", lb6, set(backends))
    cluster.kubectl("label", "node", owner, "node.kubernetes.io/exclude-from-external-load-balancers-")
