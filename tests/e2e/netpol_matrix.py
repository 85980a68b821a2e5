"""The upstream NetworkPolicy e2e method (kubernetes test/e2e/network/netpol), for the devcluster.

Namespaces x, y, z with pods a, b, c (spread over the nodes), each serving TCP and UDP on ports 80
and 81 (agnhost porter) behind its own Service `s-<pod>`. A `Reachability` truth table, written by
each scenario the way upstream's is, says which of the 9x9 (source pod -> target pod's Service)
connections must work; `Matrix.check` probes them all from every pod at once and retries only the
cells that disagree, until they agree or the time is up; then it fails with both tables printed.

Probes go to the Service's ClusterIP, so the policy must hold after the proxy's DNAT. SCTP is not
probed: the kernels this runs on have no SCTP module (scenarios only check that an SCTP rule does not
open TCP or UDP).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from operators.devcluster.podexec import find_record
from operators.devcluster.podworker import shim_argv
from operators.devcluster.state import load_layout
from operators.devcluster.testapps import AGNHOST
from tests.e2e.apps import app_path
from tests.e2e.harness import Cluster, wait_for

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
PEERS = tuple(f"{ns}/{pod}" for ns in NAMESPACES for pod in PODS)
PORTS = (80, 81)
PROTOCOLS = ("TCP", "UDP")
Case = tuple[int, str]  # (port, protocol)
Obj = dict[str, Any]


def port_name(port: int, protocol: str) -> str:
    """The container port names, as upstream's: serve-80-tcp, serve-81-udp, ..."""
    return f"serve-{port}-{protocol.lower()}"


def as_manifest(objs: Iterable[Obj]) -> str:
    """A v1 List in JSON: YAML would read the namespace name `y` as a boolean."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)})


def namespaces_manifest() -> str:
    """The namespaces, labelled ns=<name>."""
    return as_manifest([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {
        "ns": ns}}} for ns in NAMESPACES])


def manifest(nodes: list[str]) -> str:
    """Pods (label pod=<name>, pinned round-robin to the nodes) and their Services."""
    objs: list[Obj] = []
    for i, peer in enumerate(PEERS):
        ns, pod = peer.split("/")
        env = [{"name": f"SERVE_{'UDP_' if proto == 'UDP' else ''}PORT_{port}", "value": f"{peer} {port}/{proto}"}
               for port in PORTS for proto in PROTOCOLS]
        ports = [{"name": port_name(port, proto), "containerPort": port, "protocol": proto}
                 for port in PORTS for proto in PROTOCOLS]
        objs.append({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": ns, "labels": {"pod": pod}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": nodes[i % len(nodes)]},
                     "containers": [{"name": "porter", "image": AGNHOST, "args": ["porter"], "env": env,
                                     "ports": ports}]},
        })
        objs.append({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s-{pod}", "namespace": ns},
            "spec": {"selector": {"pod": pod}, "ports": [
                {"name": port_name(port, proto), "port": port, "protocol": proto}
                for port in PORTS for proto in PROTOCOLS]},
        })
    return as_manifest(objs)


# --- the expected matrix -------------------------------------------------------------------------

Match = Callable[[str], bool]  # "ns/pod" -> selected?


def pods(ns: str | None = None, pod: str | None = None) -> Match:
    """The peers in namespace `ns` (any if None) named `pod` (any if None)."""
    return lambda p: (ns is None or p.split("/")[0] == ns) and (pod is None or p.split("/")[1] == pod)


ANY = pods()


@dataclass
class Reachability:
    """Expected reachability from each peer to each peer's Service, for one case (port/protocol)."""

    default: bool = True
    cells: dict[tuple[str, str], bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cells = {(s, d): self.default for s in PEERS for d in PEERS}

    def expect(self, src: Match, dst: Match, allowed: bool) -> Reachability:
        for s, d in self.cells:
            if src(s) and dst(d):
                self.cells[(s, d)] = allowed
        return self

    def ingress(self, dst: Match, allowed: bool) -> Reachability:
        """Every source to `dst`."""
        return self.expect(ANY, dst, allowed)

    def egress(self, src: Match, allowed: bool) -> Reachability:
        """`src` to every destination."""
        return self.expect(src, ANY, allowed)


def table(cells: dict[tuple[str, str], bool], marks: Iterable[tuple[str, str]] = ()) -> str:
    """Rows are sources, columns destinations; `.` reaches, `X` does not, `*` after a cell that is wrong."""
    marked = set(marks)
    head = "       " + " ".join(f"{d:<5}" for d in PEERS)
    rows = [head]
    for s in PEERS:
        row = [("." if cells[(s, d)] else "X") + ("*" if (s, d) in marked else " ") for d in PEERS]
        rows.append(f"{s:<6} " + " ".join(f"{c:<5}" for c in row))
    return "\n".join(rows)


# --- probing -------------------------------------------------------------------------------------


class Matrix:
    """The 9 pods, their Services' ClusterIPs, and the parallel prober."""

    def __init__(self, cluster: Cluster, nodes: list[str]) -> None:
        self.cluster = cluster
        self.nodes = nodes
        self.layout = load_layout(cluster.name)
        self.service_ip: dict[str, str] = {}
        self.pod_ip: dict[str, str] = {}
        self.plans: dict[str, str] = {}

    def deploy(self, timeout: float = 120) -> None:
        self.cluster.apply(namespaces_manifest())
        for ns in NAMESPACES:  # pods are admitted once the service-account controller made `default`
            wait_for(lambda ns=ns: self.cluster.kubectl("get", "sa", "default", "-n", ns, check=False)
                     .startswith("NAME"), f"serviceaccount {ns}/default", 30)
        self.cluster.apply(manifest(self.nodes))
        wait_for(self._running, "the 9 pods running", timeout)
        for ns in NAMESPACES:
            for svc in self.cluster.get("services", "-n", ns)["items"]:
                self.service_ip[f"{ns}/{svc['metadata']['name'].removeprefix('s-')}"] = svc["spec"]["clusterIP"]

    def _running(self) -> bool:
        for ns in NAMESPACES:
            for p in self.cluster.get("pods", "-n", ns)["items"]:
                if p["status"].get("phase") == "Running" and p["status"].get("podIP"):
                    self.pod_ip[f"{ns}/{p['metadata']['name']}"] = p["status"]["podIP"]
        if len(self.pod_ip) < len(PEERS):
            return False
        for peer in PEERS:  # the pod's container plan: what `knet devcluster exec` runs the command with
            _, data = find_record(self.layout, peer)
            self.plans[peer] = json.dumps(data["plans"][data["containers"][0]])
        return True

    def exec(self, peer: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command in the pod as `knet devcluster exec` does (its shim), without the CLI's start-up."""
        return subprocess.run(shim_argv(list(cmd)), env={**os.environ, "KNET_SHIM": self.plans[peer]},
                              capture_output=True, text=True, timeout=timeout)

    def popen(self, peer: str, *cmd: str) -> subprocess.Popen[str]:
        """A long-running command in the pod, with pipes to its stdin and stdout."""
        return subprocess.Popen(shim_argv(list(cmd)), env={**os.environ, "KNET_SHIM": self.plans[peer]},
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def probe(self, cells: list[tuple[str, str, Case]]) -> dict[tuple[str, str, Case], bool]:
        """One concurrent probe per cell, one exec per source pod, all sources at once."""
        by_src: dict[str, list[tuple[str, str, Case]]] = {}
        for cell in cells:
            by_src.setdefault(cell[0], []).append(cell)

        def run(src: str) -> list[bool]:
            targets = [[self.service_ip[d], port, proto] for _, d, (port, proto) in by_src[src]]
            proc = self.exec(src, "python3", app_path("reach_probe"), json.dumps(targets))
            try:
                return json.loads(proc.stdout)
            except json.JSONDecodeError:
                return [False] * len(targets)

        with ThreadPoolExecutor(len(by_src) or 1) as pool:
            results = dict(zip(by_src, pool.map(run, by_src), strict=True))
        return {cell: ok for src, src_cells in by_src.items() for cell, ok in zip(src_cells, results[src],
                                                                                   strict=True)}

    def check(self, expected: dict[Case, Reachability], timeout: float = 20) -> None:
        """Probe every cell of every case; re-probe the cells that disagree until they agree or `timeout`."""
        want = {(s, d, case): r.cells[(s, d)] for case, r in expected.items() for s, d in r.cells}
        seen: dict[tuple[str, str, Case], bool] = {}
        todo = list(want)
        deadline = time.monotonic() + timeout
        while todo:
            seen.update(self.probe(todo))
            todo = [cell for cell in todo if seen[cell] != want[cell]]
            if todo and time.monotonic() > deadline:
                break
        if todo:
            report = []
            for case, r in expected.items():
                observed = {(s, d): seen[(s, d, case)] for s, d in r.cells}
                wrong = [(s, d) for s, d, c in todo if c == case]
                report += [f"{case[0]}/{case[1]} expected:", table(r.cells), f"{case[0]}/{case[1]} observed "
                           f"({len(wrong)} wrong, marked *):", table(observed, wrong), ""]
            raise AssertionError(f"{len(todo)} cells disagree after {timeout}s\n" + "\n".join(report))


# --- policies ------------------------------------------------------------------------------------


def labels(**kv: str) -> Obj:
    return {"matchLabels": kv}


def expression(key: str, operator: str, *values: str) -> Obj:
    expr: Obj = {"key": key, "operator": operator}
    return {"matchExpressions": [{**expr, "values": list(values)} if values else expr]}


def policy(name: str, ns: str = "x", select: Obj | None = None, ingress: list[Obj] | None = None,
           egress: list[Obj] | None = None, types: list[str] | None = None) -> Obj:
    """A NetworkPolicy; `select` is its podSelector ({} selects every pod of `ns`)."""
    spec: Obj = {"podSelector": select or {}}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    if types is not None:
        spec["policyTypes"] = types
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}
