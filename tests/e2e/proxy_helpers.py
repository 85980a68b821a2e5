"""The agent as a DaemonSet, backends and clients, and traffic helpers for the Service proxy e2e tests."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from operators.devcluster.layout import Layout
from operators.devcluster.state import load_layout
from operators.netpol.nftables import TABLE as NETPOL_TABLE
from operators.proxy.nftables import render_cleanup
from tests.e2e.apps import app_path
from tests.e2e.harness import Cluster, knet, wait_for

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"
AGENT_NS = "knet-proxy-e2e"
AGENT_ROLE = "knet-proxy-e2e-agent"
HEALTH_PORT = 10256
METRICS_PORT = 10249






def agent_manifest(api_server: str, image: str = "localhost/knet:dev", args: tuple[str, ...] = ()) -> str:
    """The agent with least privilege: read Services, EndpointSlices, Nodes, NetworkPolicies, Pods,
    Namespaces and the ClusterNetworkConfig; write Events. `args` are added to `knet agent`."""
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {AGENT_NS}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: knet-agent, namespace: {AGENT_NS}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {AGENT_ROLE}}}
rules:
- {{apiGroups: [""], resources: [services, nodes], verbs: [list, watch]}}
- {{apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}}
- {{apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [list, watch]}}
- {{apiGroups: [""], resources: [pods, namespaces], verbs: [list, watch]}}
- {{apiGroups: [knet.io], resources: [clusternetworkconfigs], verbs: [get, list, watch]}}
- {{apiGroups: [knet.io], resources: [nodenetworkstatuses], verbs: [get, create]}}
- {{apiGroups: [knet.io], resources: [nodenetworkstatuses/status], verbs: [patch]}}
- {{apiGroups: [""], resources: [events], verbs: [create, patch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {AGENT_ROLE}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {AGENT_ROLE}}}
subjects: [{{kind: ServiceAccount, name: knet-agent, namespace: {AGENT_NS}}}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: knet-agent, namespace: {AGENT_NS}}}
spec:
  selector: {{matchLabels: {{app: knet-agent}}}}
  template:
    metadata: {{labels: {{app: knet-agent}}}}
    spec:
      serviceAccountName: knet-agent
      hostNetwork: true
      tolerations: [{{operator: Exists}}]
      containers:
      - name: agent
        image: {image}
        command: [knet, agent{"".join(", " + a for a in args)}]
        env:
        - {{name: NODE_NAME, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
        - {{name: KNET_API_SERVER, value: "{api_server}"}}
        readinessProbe:
          httpGet: {{path: /readyz, port: {HEALTH_PORT}}}
          periodSeconds: 2
"""


def backends_manifest(ns: str, replicas: int = 4) -> str:
    """netexec pods spread over both nodes, with named HTTP and UDP ports, and one client pod per node."""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: netexec, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: netexec}}}}
  template:
    metadata: {{labels: {{app: netexec}}}}
    spec:
      topologySpreadConstraints:
      - {{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule,
          labelSelector: {{matchLabels: {{app: netexec}}}}}}
      containers:
      - name: netexec
        image: {AGNHOST}
        args: [netexec, --http-port=8080, --udp-port=8081]
        ports:
        - {{name: http, containerPort: 8080}}
        - {{name: udp, containerPort: 8081, protocol: UDP}}
"""


def pod_manifest(ns: str, name: str, node: str, labels: str = "{}", program: str | None = None,
                 env: dict[str, str] | None = None, args: str = "[pause]") -> str:
    """A pod pinned to `node`: agnhost (pause by default), or one of tests/e2e/apps as its main process."""
    command = f"command: [python3, {json.dumps(app_path(program))}]" if program else f"args: {args}"
    env_list = ", ".join(f'{{name: {k}, value: "{v}"}}' for k, v in {"PYTHONUNBUFFERED": "1", **(env or {})}.items())
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}, labels: {labels}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: main
    image: {AGNHOST}
    {command}
    env: [{env_list}]
"""


@contextlib.contextmanager
def running_agent(cluster: Cluster, args: tuple[str, ...] = ()) -> Iterator[Proxy]:
    """The agent DaemonSet on every node, ready, with a route for the service range in every node;
    removed afterwards with its rules (its logs printed when a test of the session failed)."""
    px = Proxy.of(cluster)
    cluster.apply(agent_manifest(cluster.config("server"), args=args))
    failed = True
    try:
        with px.service_routes():
            wait_for(lambda: len(px.agent_pods()) == len(px.nodes), "an agent pod on every node", 60)
            px.wait_agents_ready()
            yield px
            failed = False
    finally:
        if failed:
            for node, pod in px.agent_pods().items():
                print(f"\n--- agent on {node}:\n" + "\n".join(px.logs(f"{AGENT_NS}/{pod}")[-40:]))
        cluster.kubectl("delete", "namespace", AGENT_NS, "--wait=true", "--timeout=90s", check=False)
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", AGENT_ROLE, check=False)
        px.cleanup_rules()


@dataclass
class Proxy:
    """The cluster seen by the proxy tests: nodes, their namespaces and the agent pods."""

    cluster: Cluster
    layout: Layout

    @classmethod
    def of(cls, cluster: Cluster) -> Proxy:
        return cls(cluster, load_layout(cluster.name))

    @property
    def nodes(self) -> list[str]:
        return self.layout.node_names

    def node_ip(self, node: str) -> str:
        return self.layout.node_ips(self.nodes.index(node))[0]

    @property
    def external_ip(self) -> str:
        return self.layout.external_ips[0]

    def in_node(self, node: str, *cmd: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command in a node's network namespace (as an admin on that node would)."""
        return subprocess.run(["ip", "netns", "exec", self.layout.node_ns(node), *cmd], input=stdin,
                              capture_output=True, text=True, timeout=30)

    def in_external(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command on the external client (its own namespace on the underlay, outside the cluster)."""
        return knet("devcluster", "exec", "--name", self.cluster.name, "external", "--", *cmd, check=False,
                    timeout=timeout)

    @contextlib.contextmanager
    def service_routes(self) -> Iterator[None]:
        """A route for the service range in every node, as a real node's default route provides.

        The kernel routes a packet before the hook where DNAT or the proxy's reject can see it: a node
        without a route to a ClusterIP answers "network unreachable" itself, both to its own sockets
        and to pods. Real nodes (and kind's) have a default route; the devcluster's have none."""
        routes = [[cidr, "dev", "eth0"] for cidr in self.layout.service_cidrs]  # each family's
        for node in self.nodes:
            for route in routes:
                self.in_node(node, "ip", "route", "replace", *route)
        try:
            yield
        finally:
            for node in self.nodes:
                for route in routes:
                    self.in_node(node, "ip", "route", "del", *route)

    def cleanup_rules(self) -> None:
        """Remove the agent's tables (the proxy's and the NetworkPolicy one) from every node."""
        for node in self.nodes:
            self.in_node(node, "nft", "-f", "-", stdin=render_cleanup())
            self.in_node(node, "nft", "delete", "table", "inet", NETPOL_TABLE)

    # --- the agent

    def agent_pods(self) -> dict[str, str]:
        """node -> name of the agent pod there that is not being deleted."""
        pods = self.cluster.pods(AGENT_NS, "app=knet-agent")
        return {p["spec"]["nodeName"]: p["metadata"]["name"] for p in pods
                if p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")}

    def agent_get(self, node: str, path: str, port: int = HEALTH_PORT) -> str:
        pod = self.agent_pods()[node]
        out = self.cluster.exec(f"{AGENT_NS}/{pod}", "curl", "-s", "-m", "3", f"http://127.0.0.1:{port}{path}")
        return out.stdout

    def wait_agents_ready(self, timeout: float = 120) -> None:
        for node in self.nodes:
            wait_for(lambda n=node: self.agent_get(n, "/readyz").strip() == "ok", f"agent on {node} ready", timeout)

    def metric(self, node: str, name: str) -> float:
        """The value of one sample (`name` with its labels, as the exposition prints it); 0 if absent."""
        for line in self.agent_get(node, "/metrics", METRICS_PORT).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    # --- traffic

    def fetch(self, where: str, url: str, n: int = 1) -> list[str]:
        """n HTTP GETs from a pod (`ns/name`) or `external`, each on a new connection."""
        if where == "external":
            proc = self.in_external("python3", app_path("http_fetch"), url, str(n), timeout=30 + 4 * n)
        else:
            proc = self.cluster.exec(where, "python3", app_path("http_fetch"), url, str(n), timeout=30 + 4 * n)
        return proc.stdout.split("\n")[:-1] if proc.stdout else [f"exec failed: {proc.stderr.strip()}"]

    def every_answer(self, where: str, url: str, expected: set[str], timeout: float = 30) -> None:
        """Each of `expected` answers `url` and nothing else does. The choice of endpoint is random (30
        tries miss one of 4 equal endpoints once in ~1400 runs), so tries go on, 10 at a time, until each
        one has answered."""
        deadline, seen = time.monotonic() + timeout, set[str]()
        while seen != expected and time.monotonic() < deadline:
            got = set(self.fetch(where, url, 10))
            assert got <= expected, f"{url} from {where}: answers not from the endpoints: {got - expected}"
            seen |= got
        assert seen == expected, f"{url} from {where}: in {timeout:.0f} s only {sorted(seen)} answered"

    def curl(self, where: str, url: str) -> tuple[int, str]:
        """One HTTP GET with curl from a pod or `external`: (status code, 0 without an answer; body)."""
        cmd = ["curl", "-s", "-m", "3", "-w", "\n%{http_code}", url]
        proc = self.in_external(*cmd) if where == "external" else self.cluster.exec(where, *cmd)
        body, _, code = proc.stdout.rpartition("\n")
        return int(code) if code.isdigit() else 0, body

    def udp(self, pod: str, host: str, port: int, msg: str = "hostname", n: int = 1) -> list[str]:
        proc = self.cluster.exec(pod, "python3", app_path("udp_ask"), host, str(port), msg, str(n), timeout=30 + 3 * n)
        return proc.stdout.split("\n")[:-1] if proc.stdout else [f"exec failed: {proc.stderr.strip()}"]

    def logs(self, pod: str) -> list[str]:
        return knet("devcluster", "logs", "--name", self.cluster.name, pod, check=False).stdout.splitlines()


def allow_external_ips(cluster: Cluster, ranges: list[str], mode: str = "nftables") -> None:
    """The ClusterNetworkConfig `default` allowing Services' externalIPs in `ranges` (none are by default)."""
    cluster.apply(f"""
apiVersion: knet.io/v1alpha1
kind: ClusterNetworkConfig
metadata: {{name: default}}
spec: {{proxy: {{mode: {mode}, externalIPRanges: {json.dumps(ranges)}}}}}
""")


def age(obj: dict) -> tuple[str, str]:
    """What decides which of two Services is the older: creationTimestamp, then UID."""
    return obj["metadata"]["creationTimestamp"], obj["metadata"]["uid"]


@contextlib.contextmanager
def deployed_agent(cluster: Cluster, request: pytest.FixtureRequest, crds: tuple[str, ...] = ()) -> Iterator[Proxy]:
    """The agent on every node, ready, with a route for the service ranges in the nodes (see
    `Proxy.service_routes`); `crds` (e.g. `clusternetworkconfigs.knet.io`) installed first from
    manifests/crds when absent. Everything is removed afterwards: the agent, its rules, its reports, the
    `knet-lb` link of LoadBalancer announcements and the CRDs installed here."""
    px = Proxy.of(cluster)
    ours = [crd for crd in crds if not cluster.kubectl("get", "crd", crd, check=False).startswith("NAME")]
    for crd in ours:
        plural, group = crd.split(".", 1)
        cluster.kubectl("apply", "-f", str(Path(__file__).parents[2] / "manifests" / "crds" / f"{group}_{plural}.yaml"))
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")
    cluster.apply(agent_manifest(cluster.config("server")))
    try:
        with px.service_routes():
            wait_for(lambda: len(px.agent_pods()) == len(px.nodes), "an agent pod on every node", 60)
            px.wait_agents_ready()
            yield px
    finally:
        if request.session.testsfailed:
            for node, pod in px.agent_pods().items():
                print(f"\n--- agent on {node}:\n" + "\n".join(px.logs(f"{AGENT_NS}/{pod}")[-40:]))
        if crds:
            cluster.kubectl("delete", "clusternetworkconfig", "default", "--ignore-not-found", check=False)
        cluster.kubectl("delete", "namespace", AGENT_NS, "--wait=true", "--timeout=90s", check=False)
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", AGENT_ROLE, check=False)
        if crds:
            cluster.kubectl("delete", "nodenetworkstatuses", "--all", check=False)
        for crd in ours:
            cluster.kubectl("delete", "crd", crd, check=False)
        px.cleanup_rules()
        for node in px.nodes:
            px.in_node(node, "ip", "link", "del", "knet-lb")
