"""`make demo`: bring up the devcluster, install knet with its Helm chart, run the demo application
(manifests/examples/demo.yaml) and show, capability by capability, what was checked and what came back.

Idempotent and quick the second time: `up` returns at once for a running cluster, `helm upgrade --install`
changes nothing on an unchanged release, and the waits return as soon as everything is ready. The cluster
keeps running afterwards for the user to explore.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cluster, upstream
from .cluster import DevclusterError
from .layout import Layout

NAME = "knet"
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "knet"
DEMO = ROOT / "manifests" / "examples" / "demo.yaml"
NS = "knet-system"
HOST = "web.demo.example"
# A LoadBalancer Service beside the demo's, with a pool of the cluster's own LoadBalancer range.
POOL = """
apiVersion: knet.io/v1alpha1
kind: LoadBalancerIPPool
metadata: {{name: demo}}
spec:
  ranges: [{{cidr: {cidr}}}]
"""
LB = """
apiVersion: v1
kind: Service
metadata: {{name: web-lb, namespace: demo}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"""


def run(argv: list[str], input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)


@dataclass(frozen=True)
class Target:
    """What the demo needs to know of a cluster: its kubeconfig, how to run a command in a pod or on the
    external client, the LoadBalancer range it may hand out, and the values the chart is installed with."""

    kubeconfig: Path
    exec_argv: Callable[[str], list[str]]  # where ("ns/pod" or "external") -> argv prefix of the command
    lb_cidr: str
    values: Path
    api_url: str
    dns: str = "knet dns as kube-dns at 10.96.0.10, configured by the DNSConfig `default`"
    dns_timeout: float = 20
    pool: str = "demo"  # the LoadBalancerIPPool of lb_cidr: the demo makes `demo`, or uses one that exists


def devcluster_target(layout: Layout) -> Target:
    def argv(where: str) -> list[str]:
        return [sys.executable, "-m", "operators.cli", "devcluster", "exec", "--name", layout.name, where, "--"]
    return Target(layout.kubeconfig, argv, layout.lb_pool[0], CHART / "ci" / "devcluster-values.yaml",
                  layout.api_url)


class Demo:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.results: list[bool] = []

    def kubectl(self, *args: str, input: str | None = None) -> str:
        proc = run([str(upstream.bin_dir() / "kubectl"), f"--kubeconfig={self.target.kubeconfig}", *args], input)
        if proc.returncode:
            raise DevclusterError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def exec(self, where: str, *cmd: str) -> str:
        """A command in a pod (`ns/name`) or in the external client's namespace; its output."""
        return run([*self.target.exec_argv(where), *cmd], timeout=30).stdout.strip()

    def http(self, where: str, *urls: str, host: str = "") -> list[str]:
        """A GET of each URL with curl, all in one exec: the bodies, or `no answer`."""
        script = ('for u in "$@"; do curl -s -m 2 --fail-with-body ${HOST:+-H "Host: $HOST"} "$u" '
                  '|| printf "no answer"; echo; done')
        out = self.exec(where, "env", f"HOST={host}", "sh", "-c", script, "sh", *urls)
        lines = out.splitlines()
        return [(line.strip() or "no answer") for line in lines] + ["no answer"] * (len(urls) - len(lines))

    def step(self, ok: bool, what: str) -> bool:
        print(f"  [{'ok' if ok else 'FAILED'}] {what}", flush=True)
        self.results.append(ok)
        return ok

    def wait(self, cond: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = cond()
            except (DevclusterError, KeyError, IndexError):
                value = None
            if value or time.monotonic() > deadline:
                return value
            time.sleep(1)


def ready(obj: dict) -> bool:
    s = obj.get("status", {})
    if obj["kind"] == "DaemonSet":
        want = s.get("desiredNumberScheduled")
        return want is not None and s.get("updatedNumberScheduled") == want == s.get("numberReady")
    return s.get("updatedReplicas") == obj["spec"]["replicas"] == s.get("readyReplicas") == s.get("replicas")


def controller_exists() -> bool:
    return run([sys.executable, "-m", "operators.cli", "controller", "--help"]).returncode == 0


def install(d: Demo, controller: bool) -> None:
    """knet from the chart, with the target's values; the chart finds the API server in kube-public/cluster-info."""
    print(f"== helm upgrade --install knet charts/knet -n {NS} (ci/{d.target.values.name}, "
          f"controlPlaneEndpoint auto: {d.target.api_url} from kube-public/cluster-info)")
    proc = run([str(upstream.bin_dir() / "helm"), f"--kubeconfig={d.target.kubeconfig}", "upgrade", "--install",
                "knet", str(CHART), "-n", NS, "--create-namespace", "-f", str(d.target.values),
                "--set", f"controller.enabled={str(controller).lower()}"], timeout=300)
    if proc.returncode:
        raise DevclusterError(f"helm: {proc.stderr.strip()}")
    show_workloads(d, controller)


def show_workloads(d: Demo, controller: bool) -> None:
    """Wait for knet's DaemonSet and Deployments, then one line each: ready pods, nodes, ServiceAccount."""
    wanted = {"agent", "dns", "ingress", *(["controller"] if controller else [])}

    def workloads() -> dict[str, dict]:
        items = d.get("daemonsets,deployments", "-n", NS, "-l", "app.kubernetes.io/instance=knet")["items"]
        return {o["metadata"]["labels"]["app.kubernetes.io/component"]: o for o in items}

    d.wait(lambda: all(ready(o) for o in workloads().values()) and set(workloads()) == wanted, 180)
    for component, obj in sorted(workloads().items()):
        pods = d.get("pods", "-n", NS, "-l", f"app.kubernetes.io/component={component}")["items"]
        where = ", ".join(sorted({p["spec"].get("nodeName", "?") for p in pods}))
        d.step(ready(obj), f"{obj['kind']} knet-{component}: {len(pods)} pod(s) ready on {where}, "
               f"ServiceAccount {pods[0]['spec']['serviceAccountName'] if pods else '?'}")


def check_demo(d: Demo, controller: bool) -> None:
    print(f"== kubectl apply -f {DEMO.relative_to(ROOT)}")
    d.kubectl("apply", "-f", str(DEMO))
    d.wait(lambda: d.get("deployment", "web", "-n", "demo")["status"].get("readyReplicas") == 2, 120)
    d.wait(lambda: all(d.get("pod", p, "-n", "demo")["status"].get("phase") == "Running"
                       for p in ("client", "intruder")), 60)
    web = d.get("pods", "-n", "demo", "-l", "app=web")["items"]
    pods = {p["metadata"]["name"]: p["status"].get("podIP") for p in web}
    svc = d.get("service", "web", "-n", "demo")
    ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    node_ips = [next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
                for n in d.get("nodes")["items"]]

    print("-- Service (knet agent: nftables on every node)")
    # a new pod is cut off until the agents have programmed its address (the NetworkPolicy guard), about a
    # second after it runs: wait for the first answer before counting answers
    d.wait(lambda: d.http("demo/client", f"http://{ip}/hostname")[0] in pods, 20)
    # every backend answers: rounds of 6 requests until each has (one round misses one of two 3% of the time)
    answers: list[str] = []
    for _ in range(5):
        answers += d.http("demo/client", *[f"http://{ip}/hostname"] * 6)
        if set(answers) >= set(pods):
            break
    d.step(set(answers) == set(pods),
           f"ClusterIP {ip}:80 from pod demo/client -> {sorted(set(answers))}")
    urls = [f"http://{node_ip}:{node_port}/hostname" for node_ip in node_ips]
    for url, got in zip(urls, d.http("external", *urls), strict=True):
        d.step(got in pods, f"NodePort {url} from the external client -> {got}")

    print(f"-- DNS ({d.target.dns})")
    for name in ("web.demo.svc.cluster.local", HOST):
        def dig(n: str = name) -> str:
            return d.exec("demo/client", "dig", "+short", "+time=2", "@10.96.0.10", n)
        got = d.wait(lambda f=dig: (r := f()) == ip and r, d.target.dns_timeout) or dig()
        d.step(got == ip, f"{name} from pod demo/client -> {got or 'no answer'}")

    print("-- Ingress (knet ingress: nginx, class knet, through its Service's node port)")
    ingress_port = d.get("service", "knet-ingress", "-n", NS)["spec"]["ports"][0]["nodePort"]
    url = f"http://{node_ips[0]}:{ingress_port}/hostname"
    got = d.wait(lambda: (r := d.http("external", url, host=HOST)[0]) in pods and r, 30) or "no answer"
    d.step(got in pods, f"{url} with Host: {HOST} from the external client -> {got}")

    print("-- NetworkPolicy `web` (knet agent: table inet knet-netpol)")
    for where, allowed in (("demo/client", True), ("demo/intruder", False)):
        targets = [ip, *(f"{a}:8080" for a in pods.values())]
        for target, got in zip(targets, d.http(where, *(f"http://{t}/hostname" for t in targets)), strict=True):
            d.step((got in pods) == allowed, f"{where} -> {target}: {got} "
                   f"({'allowed' if allowed else 'blocked'}, as written)")

    if not controller:
        print("-- LoadBalancer: skipped (`knet controller` does not exist in this tree)")
        return
    print("-- LoadBalancer (knet controller: addresses from a LoadBalancerIPPool)")
    cidr = d.target.lb_cidr
    pool = POOL.format(cidr=cidr) + "---" if d.target.pool == "demo" else ""
    d.kubectl("apply", "-f", "-", input=pool + LB.format())
    lb = d.wait(lambda: d.get("service", "web-lb", "-n", "demo")["status"]["loadBalancer"]["ingress"][0]["ip"], 30)
    d.step(bool(lb) and ipaddress.ip_address(lb) in ipaddress.ip_network(cidr),
           f"Service demo/web-lb got {lb or 'no address'} from pool {d.target.pool} ({cidr})")
    if lb:
        got = d.wait(lambda: (r := d.http("external", f"http://{lb}/hostname")[0]) in pods and r, 20)
        d.step(bool(got), f"http://{lb}/hostname from the external client -> {got or 'no answer'}")


def summary(d: Demo, started: float, hints: list[str]) -> int:
    """How to go on with the running cluster, then the count of checks; the exit code."""
    print(f"\nThe cluster keeps running ({time.monotonic() - started:.0f}s for this run). Use it with:")
    print("\n".join(f"  {h}" for h in hints[:-1]))
    print(hints[-1])
    failed = d.results.count(False)
    print(f"\n{len(d.results) - failed} passed, {failed} failed")
    return 0 if not failed else 1


def main() -> int:
    print("== knet on the devcluster: a real control plane, nodes as network namespaces, pods as processes")
    t0 = time.monotonic()
    try:
        d = Demo(devcluster_target(cluster.up(NAME, nodes=2)))
        controller = controller_exists()
        install(d, controller)
        check_demo(d, controller)
    except DevclusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return summary(d, t0, [f'eval "$(.venv/bin/knet devcluster env --name {NAME})"; kubectl get pods -A -o wide',
                           f".venv/bin/knet devcluster exec --name {NAME} demo/client -- curl -s web.demo/hostname",
                           "Stop it with: make demo-devcluster-down"])


if __name__ == "__main__":
    sys.exit(main())
