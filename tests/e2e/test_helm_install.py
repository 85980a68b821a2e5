"""`helm install` of charts/knet into a fresh devcluster of its own, as a user would, then what it must do.

The chart finds the API server itself (controlPlaneEndpoint `auto`: kube-public/cluster-info, which the
devcluster publishes as kubeadm does, anonymously readable).

The components run through the node runtime with the chart's ServiceAccount tokens; the demo application
(manifests/examples/demo.yaml) then works end to end: its Service by ClusterIP and NodePort, its names
through knet's DNS, its Ingress through nginx, its NetworkPolicy. Then the example custom resources, a
permission taken from the agent's ClusterRole (and given back), `helm upgrade` under Service traffic, and
`helm uninstall`, which leaves no rule on the nodes and no object but the CRDs. The tests run in order and
share the release. The controller's part (LoadBalancer addresses) runs when `knet controller` exists.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from operators.devcluster import upstream
from operators.netpol.nftables import TABLE as NETPOL_TABLE
from operators.proxy.nftables import TABLE as PROXY_TABLE
from tests.e2e.apps import app_path
from tests.e2e.dns_corpus import resolver_pod
from tests.e2e.harness import KNET, Cluster, knet, wait_for
from tests.e2e.proxy_helpers import Proxy
from tests.e2e.test_chart import printer_columns, table

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "knet"
EXAMPLES = ROOT / "manifests" / "examples"
NAME = os.environ.get("KNET_HELM_CLUSTER", "hi")
NS = "knet-system"
HOST = "web.demo.example"
CONTROLLER = subprocess.run([*KNET, "controller", "--help"], capture_output=True).returncode == 0
COMPONENTS = ["agent", "dns", "ingress", *(["controller"] if CONTROLLER else [])]
needs_controller = pytest.mark.skipif(not CONTROLLER, reason="`knet controller` does not exist in this tree yet")


@pytest.fixture(scope="module")
def hi() -> Iterator[Cluster]:
    """A devcluster of this module's own, so that the chart meets a cluster nothing else touched."""
    proc = knet("devcluster", "up", "--name", NAME, "--nodes", "2", timeout=600)
    kubeconfig = proc.stdout.strip().splitlines()[-1].removeprefix("KUBECONFIG=")
    yield Cluster(NAME, kubeconfig, {})
    knet("devcluster", "down", "--name", NAME, timeout=120)


def helm(c: Cluster, *args: str) -> str:
    proc = subprocess.run([str(upstream.bin_dir() / "helm"), f"--kubeconfig={c.kubeconfig}", "-n", NS, *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def release_args(c: Cluster) -> list[str]:
    """The devcluster variant; controlPlaneEndpoint is left at `auto`."""
    return [str(CHART), "-f", str(CHART / "ci" / "devcluster-values.yaml"), "--set",
            f"controller.enabled={str(CONTROLLER).lower()}"]


def workloads(c: Cluster) -> dict[str, dict]:
    """component -> its DaemonSet or Deployment."""
    items = c.get("daemonsets,deployments", "-n", NS, "-l", "app.kubernetes.io/instance=knet")["items"]
    return {o["metadata"]["labels"]["app.kubernetes.io/component"]: o for o in items}


def rolled_out(obj: dict) -> bool:
    """All replicas of the current template are updated and ready (what `kubectl rollout status` waits for)."""
    s, gen = obj.get("status", {}), obj["metadata"]["generation"]
    if obj["kind"] == "DaemonSet":
        want = s.get("desiredNumberScheduled", -1)
        return s.get("observedGeneration") == gen and s.get("updatedNumberScheduled") == want == s.get("numberReady")
    want = obj["spec"]["replicas"]
    return (s.get("observedGeneration") == gen and s.get("updatedReplicas") == want == s.get("readyReplicas")
            and s.get("replicas") == want)


def wait_rolled_out(c: Cluster, timeout: float = 150) -> None:
    def done() -> bool:
        w = workloads(c)
        waiting = sorted(set(COMPONENTS) - {k for k, o in w.items() if rolled_out(o)})
        assert not waiting, f"not rolled out: {waiting}"
        return True
    wait_for(done, f"knet's {', '.join(COMPONENTS)} rolled out and ready", timeout, 1)


@pytest.fixture(scope="module")
def release(hi: Cluster) -> Cluster:
    t0 = time.monotonic()
    helm(hi, "install", "knet", *release_args(hi), "--create-namespace")
    wait_rolled_out(hi)
    print(f"helm install -> every component ready in {time.monotonic() - t0:.1f}s")
    return hi


@pytest.fixture(scope="module")
def demo(release: Cluster) -> Proxy:
    release.kubectl("apply", "-f", str(EXAMPLES / "demo.yaml"))
    wait_for(lambda: release.get("deployment", "web", "-n", "demo").get("status", {}).get("readyReplicas") == 2,
             "the demo's web pods ready", 90)
    for pod in ("client", "intruder"):
        wait_for(lambda p=pod: release.get("pod", p, "-n", "demo")["status"].get("phase") == "Running",
                 f"demo/{pod} running", 60)
    return Proxy.of(release)


def web_pods(c: Cluster) -> set[str]:
    return {p["metadata"]["name"] for p in c.pods("demo", "app=web")}


def service(c: Cluster, ns: str, name: str) -> tuple[str, dict[str, int]]:
    """ClusterIP and {port name: nodePort}."""
    spec = c.get("service", name, "-n", ns)["spec"]
    return spec["clusterIP"], {p["name"]: p.get("nodePort", 0) for p in spec["ports"]}


def test_components_run_with_the_charts_accounts(release: Cluster) -> None:
    nodes = {n["metadata"]["name"] for n in release.get("nodes")["items"]}
    pods = release.pods(NS, "app.kubernetes.io/instance=knet")
    by_component: dict[str, list[dict]] = {}
    for p in pods:
        by_component.setdefault(p["metadata"]["labels"]["app.kubernetes.io/component"], []).append(p)
    assert sorted(by_component) == sorted(COMPONENTS)
    for component, ps in by_component.items():
        for p in ps:
            assert p["spec"]["serviceAccountName"] == f"knet-{component}", p["metadata"]["name"]
            assert release.condition(p, "Ready") == "True", p["metadata"]["name"]
    assert {p["spec"]["nodeName"] for p in by_component["agent"]} == nodes, "one agent per node"
    assert all(p["spec"]["hostNetwork"] for p in by_component["agent"])
    assert len(by_component["dns"]) == 2
    # every agent programmed its node
    proxy = Proxy.of(release)
    for node in proxy.nodes:
        assert f"table inet {PROXY_TABLE}" in proxy.in_node(node, "nft", "list", "tables").stdout


def test_cluster_info_is_readable_without_credentials(hi: Cluster) -> None:
    url = f"{hi.config('server')}/api/v1/namespaces/kube-public/configmaps/cluster-info"
    trust = ssl.create_default_context(cafile=hi.config("certificate-authority"))
    with urllib.request.urlopen(url, context=trust, timeout=10) as r:  # no client certificate: anonymous
        kubeconfig = yaml.safe_load(json.load(r)["data"]["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == hi.config("server") and not kubeconfig["users"]


def test_components_use_the_api_server_from_cluster_info(release: Cluster) -> None:
    for name, obj in workloads(release).items():
        (container,) = obj["spec"]["template"]["spec"]["containers"]
        assert {"name": "KNET_API_SERVER", "value": release.config("server")} in container["env"], name
    assert f"at {release.config('server')} (controlPlaneEndpoint auto: read from kube-public/cluster-info)" in helm(
        release, "get", "notes", "knet")


def test_service_by_cluster_ip(demo: Proxy) -> None:
    ip, _ = service(demo.cluster, "demo", "web")
    pods = web_pods(demo.cluster)  # ready pods; their endpoints reach the rules within a sync or two

    def both_answer() -> bool:
        answers = demo.fetch("demo/client", f"http://{ip}/hostname", 16)
        assert set(answers) <= pods, answers
        return set(answers) == pods

    wait_for(both_answer, f"both web pods answering {ip}", 20, interval=1)
    udp = demo.udp("demo/client", ip, 81, n=3)
    assert set(udp) <= web_pods(demo.cluster) and len(udp) == 3, udp


def test_service_by_node_port_from_outside(demo: Proxy) -> None:
    _, ports = service(demo.cluster, "demo", "web")
    for node in demo.nodes:
        answers = demo.fetch("external", f"http://{demo.node_ip(node)}:{ports['http']}/hostname", 4)
        assert answers and set(answers) <= web_pods(demo.cluster), (node, answers)


def test_names_through_knet_dns(demo: Proxy) -> None:
    ip, _ = service(demo.cluster, "demo", "web")
    dns_ip, _ = service(demo.cluster, NS, "kube-dns")
    assert dns_ip == "10.96.0.10"
    for name in ("web.demo.svc.cluster.local", HOST):  # the second by the demo's DNSConfig rewrite
        out = demo.cluster.exec("demo/client", "dig", "+short", "+time=2", f"@{dns_ip}", name).stdout.split()
        assert out == [ip], (name, out)
    # the pod's own resolver (resolv.conf from the node runtime: clusterDNS and the search path)
    code = "import socket; print(socket.gethostbyname('web'))"
    assert demo.cluster.exec("demo/client", "python3", "-c", code).stdout.strip() == ip


def curl_ingress(p: Proxy, address: str, host: str = HOST) -> tuple[int, str]:
    cmd = ["curl", "-s", "-m", "3", "-H", f"Host: {host}", "-w", "\n%{http_code}", f"http://{address}/hostname"]
    out = knet("devcluster", "exec", "--name", p.cluster.name, "external", "--", *cmd, check=False).stdout
    body, _, code = out.rpartition("\n")
    return int(code) if code.isdigit() else 0, body.strip()


def test_ingress_through_nginx(demo: Proxy) -> None:
    _, ports = service(demo.cluster, NS, "knet-ingress")
    pods = web_pods(demo.cluster)
    for node in demo.nodes:
        address = f"{demo.node_ip(node)}:{ports['http']}"
        _, body = wait_for(lambda a=address: (r := curl_ingress(demo, a))[0] == 200 and r, f"{HOST} via {address}")
        assert body in pods, body
        assert curl_ingress(demo, address, "other.example")[0] == 404


# GET each URL given as an argument, one line each: the body, or "no answer" (all in one exec).
GET_EACH = 'for u in "$@"; do curl -s -m 2 --fail-with-body "$u" || printf "no answer"; echo; done'


def get_each(p: Proxy, where: str, urls: list[str]) -> list[str]:
    cmd = ["sh", "-c", GET_EACH, "sh", *urls]
    if where == "external":
        return knet("devcluster", "exec", "--name", p.cluster.name, "external", "--", *cmd).stdout.splitlines()
    return p.cluster.exec(where, *cmd, timeout=60).stdout.splitlines()


def test_network_policy_as_written(demo: Proxy) -> None:
    if not any(f"table inet {NETPOL_TABLE}" in demo.in_node(n, "nft", "list", "tables").stdout for n in demo.nodes):
        pytest.xfail(f"the agent does not enforce NetworkPolicy yet (no table inet {NETPOL_TABLE} on any node)")
    ip, ports = service(demo.cluster, "demo", "web")
    pods = {p["metadata"]["name"]: p["status"]["podIP"] for p in demo.cluster.pods("demo", "app=web")}
    targets = [f"http://{ip}/hostname", *(f"http://{a}:8080/hostname" for a in pods.values())]
    allowed = get_each(demo, "demo/client", targets)
    assert len(allowed) == len(targets) and set(allowed) <= set(pods), f"role=client must be allowed: {allowed}"
    assert get_each(demo, "demo/intruder", targets) == ["no answer"] * len(targets), "the intruder must be dropped"
    # NodePort from outside arrives from a node address, inside the policy's ipBlock
    outside = get_each(demo, "external", [f"http://{demo.node_ip(n)}:{ports['http']}/hostname" for n in demo.nodes])
    assert len(outside) == len(demo.nodes) and set(outside) <= set(pods), outside


def test_example_dnsconfig_takes_effect(demo: Proxy) -> None:
    """The example DNSConfig (its hosts entry, TTL) reaches knet's DNS; the demo's is put back after."""
    c = demo.cluster
    c.kubectl("apply", "-f", str(EXAMPLES / "dnsconfig.yaml"))
    try:
        dig = ["dig", "+noall", "+answer", "+time=2", "@10.96.0.10"]
        wait_for(lambda: "10.0.0.10" in c.exec("demo/client", *dig, "registry.corp.example").stdout,
                 "the example's hosts entry answered", 30)
        answer = c.exec("demo/client", *dig, "web.demo.svc.cluster.local").stdout.split()
        assert answer[1] == "5", answer  # spec.ttl
        assert c.get("dnsconfig", "default")["spec"]["stubDomains"][0]["domain"] == "corp.example"
        assert "default" in c.kubectl("get", "dnsc")
    finally:
        c.kubectl("apply", "-f", str(EXAMPLES / "demo.yaml"))


def test_cluster_network_config_listed(release: Cluster) -> None:
    """The chart's ClusterNetworkConfig (devcluster values) with its printer columns."""
    row = table(release, "clusternetworkconfig", "default")
    assert list(row) == ["NAME", *printer_columns("clusternetworkconfigs")], row
    assert {k: row[k] for k in ("MODE", "CLUSTER-CIDRS", "DOMAIN", "STRICT")} == {
        "MODE": "nftables", "CLUSTER-CIDRS": '["10.244.0.0/16"]', "DOMAIN": "cluster.local", "STRICT": "false"}


def test_node_network_statuses_written_by_the_agents(release: Cluster) -> None:
    nodes = sorted(n["metadata"]["name"] for n in release.get("nodes")["items"])
    wait_for(lambda: sorted(o["metadata"]["name"] for o in release.get("nns")["items"]) == nodes,
             "one NodeNetworkStatus per node", 30, 1)
    for node in nodes:
        row = wait_for(lambda n=node: (r := table(release, "nns", n))["READY"] == "True" and r, f"{node} synced", 30)
        assert list(row) == ["NAME", *printer_columns("nodenetworkstatuses")], row
        assert row["MODE"] == "nftables" and int(row["SERVICES"]) >= 5 and int(row["RULES"]) > 0, row


@needs_controller
def test_loadbalancer_address_from_the_example_pool(demo: Proxy) -> None:
    c = demo.cluster
    pool = yaml.safe_load((EXAMPLES / "loadbalancerippool.yaml").read_text())
    pool["spec"]["ranges"] = [{"cidr": demo.layout.lb_pool[0]}]  # this cluster's LoadBalancer range
    c.apply(json.dumps(pool))
    c.kubectl("patch", "service", "web", "-n", "demo", "-p", '{"spec": {"type": "LoadBalancer"}}')
    try:
        ingress = wait_for(lambda: c.get("service", "web", "-n", "demo")["status"]["loadBalancer"]["ingress"],
                           "an address in status.loadBalancer", 30)
        address = ingress[0]["ip"]
        assert ipaddress.ip_address(address) in ipaddress.ip_network(demo.layout.lb_pool[0])
        assert "ALLOCATED" in c.kubectl("get", "lbpool")
        answers = demo.fetch("external", f"http://{address}/hostname", 3)
        assert set(answers) <= web_pods(c), answers
    finally:
        c.kubectl("patch", "service", "web", "-n", "demo", "-p", '{"spec": {"type": "NodePort"}}')


def agent_pod(c: Cluster, node: str) -> dict | None:
    return next((p for p in c.pods(NS, "app.kubernetes.io/component=agent")
                 if p["spec"].get("nodeName") == node and not p["metadata"].get("deletionTimestamp")), None)


def knet_state(p: Proxy) -> str:
    """knet's pods (node, phase, restarts) and the last lines of each agent's log: what a failed check
    after an upgrade needs (one run found an agent seemingly absent and had nothing else to show)."""
    out = []
    for pod in p.cluster.pods(NS, "app.kubernetes.io/instance=knet"):
        name, status = pod["metadata"]["name"], pod.get("status", {})
        restarts = sum(s.get("restartCount", 0) for s in status.get("containerStatuses", []))
        out.append(f"{name} on {pod['spec'].get('nodeName')}: {status.get('phase')}, {restarts} restarts")
        if status.get("phase") != "Running":  # why not (one run found an agent Pending after the upgrade)
            out += [f"  {c['type']}={c['status']} {c.get('reason', '')} {c.get('message', '')}"
                    for c in status.get("conditions", [])]
            out += [f"  {s['name']}: {s.get('state')}" for s in status.get("containerStatuses", [])]
            node = pod["spec"].get("nodeName")
            log = p.layout.logs / f"node-{node}.log"  # what the node's runtime (the devcluster's kubelet) said
            if node and log.exists():
                out += [f"  runtime: {line}" for line in log.read_text().splitlines() if name in line][-10:]
        if pod["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "agent":
            out += [f"  {line}" for line in p.logs(f"{NS}/{name}")[-30:]]
    return "\n".join(out)


@contextlib.contextmanager
def explained(p: Proxy) -> Iterator[None]:
    """A failed check's message, followed by `knet_state`."""
    try:
        yield
    except (AssertionError, subprocess.TimeoutExpired) as e:
        raise AssertionError(f"{e}\n--- knet's pods and agent logs:\n{knet_state(p)}") from e


def test_agent_without_endpointslice_permission(demo: Proxy) -> None:
    """Take list/watch of EndpointSlices from the agent's ClusterRole: a restarted agent says so and is not
    ready (its node keeps the rules it had); giving the permission back makes it ready."""
    c, node = demo.cluster, demo.nodes[-1]
    rules = c.get("clusterrole", "knet-agent")["rules"]
    (index,) = [i for i, r in enumerate(rules) if "endpointslices" in r["resources"]]
    c.kubectl("patch", "clusterrole", "knet-agent", "--type=json", "-p",
              json.dumps([{"op": "remove", "path": f"/rules/{index}"}]))
    try:
        # the API server's authorizer learns of the change through its own watch: a new agent must not start first
        wait_for(lambda: c.kubectl("auth", "can-i", "list", "endpointslices.discovery.k8s.io",
                                   "--as=system:serviceaccount:knet-system:knet-agent", check=False).startswith("no"),
                 "the API server refusing the agent's list of EndpointSlices", 30)
        c.kubectl("delete", "pod", "-n", NS, agent_pod(c, node)["metadata"]["name"], "--wait=true")
        pod = wait_for(lambda: agent_pod(c, node), f"a new agent on {node}", 30)
        name = pod["metadata"]["name"]
        with explained(demo):  # a timeout shows why: the pod's phase and its log
            line = wait_for(lambda: next((x for x in demo.logs(f"{NS}/{name}") if "forbidden" in x), ""),
                            "the agent's log naming the missing permission", 90)
        assert 'cannot list resource "endpointslices"' in line, line
        assert "system:serviceaccount:knet-system:knet-agent" in line, line
        time.sleep(6)  # a few readiness periods
        assert c.condition(c.get("pod", name, "-n", NS), "Ready") == "False"
        # the node's rules stay: the demo Service still answers through this node
        _, ports = service(c, "demo", "web")
        assert demo.fetch("external", f"http://{demo.node_ip(node)}:{ports['http']}/hostname")[0] in web_pods(c)
    finally:
        c.kubectl("patch", "clusterrole", "knet-agent", "--type=json", "-p",
                  json.dumps([{"op": "add", "path": f"/rules/{index}", "value": rules[index]}]))
    wait_for(lambda: c.condition(c.get("pod", name, "-n", NS), "Ready") == "True",
             "the agent ready once the permission is back", 60, 1)




def test_upgrade_rolls_without_dropping_service_traffic(demo: Proxy) -> None:
    c = demo.cluster
    before = {p["metadata"]["uid"] for p in c.pods(NS, "app.kubernetes.io/instance=knet")}
    ip, _ = service(c, "demo", "web")
    c.exec("demo/client", "rm", "-f", "/tmp/stop")
    client = subprocess.Popen([*KNET, "devcluster", "exec", "--name", c.name, "demo/client", "--", "python3",
                               app_path("service_traffic"), ip],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        t0 = time.monotonic()
        helm(c, "upgrade", "knet", *release_args(c), "--set", "logLevel=debug")
        wait_rolled_out(c)
        took = time.monotonic() - t0
    finally:
        c.exec("demo/client", "touch", "/tmp/stop")
        out, err = client.communicate(timeout=30)
    lines = out.splitlines()
    failed = [x for x in lines if not x.startswith("ok")]
    print(f"helm upgrade rolled every component in {took:.1f}s; {len(lines)} requests, {len(failed)} failed")
    assert len(lines) > 40, (out, err)
    assert not failed, failed[:5]
    after = {p["metadata"]["uid"] for p in c.pods(NS, "app.kubernetes.io/instance=knet")}
    assert not before & after, "every knet pod was replaced"


NODE_LOCAL = "169.254.20.10"


def test_node_local_dns_cache(demo: Proxy) -> None:
    """`dns.nodeLocal.enabled` by `helm upgrade`: the chart's DaemonSet holds 169.254.20.10 in every node, and a
    pod on each node that uses it resolves the demo's names through its search list (answered from the cache's
    own watch) while a name outside the cluster zones goes on to the cluster DNS Service at 10.96.0.10."""
    c = demo.cluster
    with explained(demo):
        helm(c, "upgrade", "knet", *release_args(c), "--set", "dns.nodeLocal.enabled=true")
        wait_for(lambda: rolled_out(c.get("daemonset", "knet-dns-node-local", "-n", NS)),
                 "the node-local cache on every node", 90, 1)
        # The upgrade also rolls the agents (the last one set logLevel=debug): a new pod is cut off until its
        # node's agent programs it, so the resolvers come once every agent is back.
        wait_rolled_out(c)
        ip, _ = service(c, "demo", "web")
        clients = {node: f"resolver-{i}" for i, node in enumerate(demo.nodes)}
        c.apply("---".join(resolver_pod(name, "demo", node, NODE_LOCAL) for node, name in clients.items()))
        try:
            for node, name in clients.items():
                wait_for(lambda n=name: c.get("pod", n, "-n", "demo")["status"].get("phase") == "Running", name, 60)
                for asked in ("web", "web.demo", "web.demo.svc.cluster.local"):  # the first once the agent lets it out
                    out = wait_for(lambda n=name, a=asked: (o := c.exec(f"demo/{n}", "getent", "hosts", a))
                                   .returncode == 0 and o, f"{asked} from {name}", 20)
                    assert out.stdout.split()[0] == ip, (node, asked, out.stdout)
                c.exec(f"demo/{name}", "dig", "+time=3", "+tries=1", "outside.invalid")
                metrics = demo.in_node(node, "curl", "-s", "-m", "3", "http://127.0.0.1:9254/metrics").stdout
                forwarded = [x for x in metrics.splitlines() if x.startswith("knet_dns_forward_requests_total")]
                assert forwarded and all("10.96.0.10:53" in x for x in forwarded), (node, forwarded)
        finally:
            for name in clients.values():
                c.kubectl("delete", "pod", "-n", "demo", name, "--wait=false", check=False)


def test_uninstall_removes_rules_and_objects(demo: Proxy) -> None:
    c = demo.cluster
    crds = {o["metadata"]["name"] for o in c.get("crds")["items"]}
    helm(c, "uninstall", "knet", "--wait", "--timeout", "120s")
    wait_for(lambda: not c.pods(NS, "app.kubernetes.io/instance=knet"), "knet's pods gone", 90, 1)
    for node in demo.nodes:
        tables = demo.in_node(node, "nft", "list", "tables").stdout
        with explained(demo):
            assert "knet" not in tables, (node, tables)
        chains = demo.in_node(node, "iptables-save").stdout
        assert "KNET-" not in chains, (node, chains)
    kinds = ("all,serviceaccounts,configmaps,secrets,roles,rolebindings,poddisruptionbudgets,networkpolicies,"
             "ingresses")
    left = {f"{o['kind']}/{o['metadata']['name']}" for o in c.get(kinds, "-n", NS)["items"]}
    assert left <= {"ServiceAccount/default", "ConfigMap/kube-root-ca.crt"}, left
    cluster_kinds = "clusterroles,clusterrolebindings,ingressclasses,clusternetworkconfigs,clusterkopfpeerings"
    left = {f"{o['kind']}/{o['metadata']['name']}" for o in c.get(cluster_kinds)["items"]
            if "knet" in o["metadata"]["name"] or o["kind"] == "ClusterNetworkConfig"}
    assert not left, left
    assert {o["metadata"]["name"] for o in c.get("crds")["items"]} == crds, "the CRDs stay, as Helm leaves them"
    # the demo Service is no longer proxied by anyone: its ClusterIP does not answer
    ip, _ = service(c, "demo", "web")
    assert demo.fetch("demo/client", f"http://{ip}/hostname")[0] not in web_pods(c)
