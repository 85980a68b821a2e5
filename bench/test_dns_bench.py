"""dnsperf against knet dns and CoreDNS, one core each, in network namespaces of our own: CoreDNS twice,
with the `file` plugin on generated zone files, and as clusters run it (kubeadm's Corefile).

`test_dnsperf_knet_against_coredns` (file plugin). Topology: namespace `kbench-dns` holds both servers
(knet dns on 127.0.0.1:5300, CoreDNS on 127.0.0.1:5301, each pinned to CPU 0 with taskset, CoreDNS with
GOMAXPROCS=1) and dnsperf (CPU 1); namespace `kbench-dnsup` holds the upstream for external names (knet
dns serving the zone `ext.example` at 10.253.53.2, behind a veth pair), so no query leaves our namespaces.
Data: `bench.dns_data.Cluster` (10k Services with 10 Pods each in full mode). knet dns reads it as API
objects; CoreDNS serves the same names with its `file` plugin from generated zone files, with `cache`
only in the block that forwards. The file plugin is CoreDNS's cheapest authoritative path (a tree lookup
of ready records); its memory holds the records rather than the kubernetes plugin's informer caches.

`test_dnsperf_knet_against_coredns_kubernetes` (the anchor clusters run). CoreDNS with kubeadm's Corefile
(`kubernetes cluster.local in-addr.arpa ip6.arpa { pods insecure; fallthrough ...; ttl 30 }`, `cache 30`,
`forward`, and kubeadm's errors/health/ready/prometheus/loop/reload/loadbalance) and `knet dns` with the
equivalent DNSConfig (ttl 30, pods insecure, the same upstream, cache 30 s), both watching the devcluster's
API server with its admin kubeconfig, from a namespace on the devcluster's underlay (the same pinning,
ports and upstream as above). The objects, Services and EndpointSlices for the same names as the
file-plugin data (no Pods: `pods insecure` answers pod names without them), are created in bulk by
`bench.dns_objects` (quick: 200 Services x 5 endpoints; full: 10k x 10; KNET_BENCH_DNS_KUBE=2000x5 picks
another size). Both servers' memory is then their watch caches: the kubernetes plugin's informers against
knet's record store.

Figures, for both: for cluster names and for external names already in each server's cache, the QPS
dnsperf sustains with 100 queries outstanding and the p99 latency at a fixed 10k QPS (quick mode: 2k)
(full mode: the median of three rounds, the machine's 2 cores being shared), beside the floor of the
machine (a UDP echo loop measured the same way; its max QPS is the ceiling of any Python server here);
and the resident memory of each server once loaded and measured. Asserted: both servers give the same
answers to a sample of the questions, and every server answered every dnsperf question NOERROR (so what
was measured is answers, not errors). The goals are printed with their ratios; the figures are in
operators/dns/README.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bench.conftest import Bench, ratio
from bench.dns_data import Cluster
from bench.dns_knet import CACHE_TTL
from bench.dns_objects import DNSObjects
from operators.devcluster import netns, upstream
from operators.devcluster.layout import Layout
from operators.devcluster.network import _attach
from operators.devcluster.state import load_layout
from tests.e2e.harness import Cluster as DevCluster

NS, UP_NS = "kbench-dns", "kbench-dnsup"
UP_ADDR = "10.253.53.2"
KNET_PORT, COREDNS_PORT, ECHO_PORT = 5300, 5301, 5302
# The latency floor of this machine: a Python loop that returns each query as its own answer (QR set),
# on the same CPU, under the same dnsperf. What no server here can beat; printed beside the p99s.
ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    data, client = s.recvfrom(512)
    s.sendto(data[:2] + bytes([data[2] | 0x80]) + data[3:], client)
"""
EXTERNAL = Cluster(services=300, pods_per_service=0, zone="ext.example")
ROOT = Path(__file__).parents[1]


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


@dataclass
class Run:
    qps: float
    p99_ms: float
    completed: int
    noerror: int


def in_ns(ns: str, cpu: int | None, *argv: str) -> list[str]:
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return [*pin, "nsenter", f"--net={netns.NETNS_DIR / ns}", "--", *argv]


def answers(port: int, name: str, ns: str = NS) -> bool:
    cmd = in_ns(ns, None, "dig", "+short", "+time=1", "+tries=1", "-p", str(port), "@127.0.0.1", name)
    out = subprocess.run(cmd, capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() != ""


def start(name: str, port: int, argv: list[str], log: Path, env: dict[str, str] | None = None,
          within: float = 600, ns: str = NS, probes: tuple[str, ...] = ("svc-0.ns-0.svc.cluster.local",)) -> Server:
    """Start a server pinned to CPU 0 in `ns`; return once it answers every name in `probes`."""
    proc = subprocess.Popen(in_ns(ns, 0, *argv), cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + within
    while not all(answers(port, probe, ns) for probe in probes):
        assert proc.poll() is None, f"{name} exited: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"{name} not answering after {within}s"
        time.sleep(0.5)
    return Server(name, port, proc)


def dnsperf(port: int, queries: Path, *args: str, ns: str = NS) -> Run:
    """One dnsperf run from CPU 1; with `-v`, the p99 of the per-query latencies it prints."""
    out = subprocess.run(in_ns(ns, 1, "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), *args),
                         capture_output=True, text=True, check=True).stdout
    latencies = sorted(float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if line.startswith("> "))
    p99 = 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0
    noerror = re.search(r"Response codes:.*?NOERROR (\d+)", out)
    return Run(qps=float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1)), p99_ms=p99,
               completed=int(re.search(r"Queries completed:\s+(\d+)", out).group(1)),
               noerror=int(noerror.group(1)) if noerror else 0)


@pytest.fixture(scope="module")
def namespaces() -> Iterator[None]:
    with bench_pair(NS, UP_NS):
        yield


@contextlib.contextmanager
def bench_pair(ns: str, up_ns: str, layout: Layout | None = None) -> Iterator[None]:
    """Fresh namespaces `ns` (servers, dnsperf) and `up_ns` (the upstream at UP_ADDR) joined by a veth pair;
    with a layout, `ns` is also attached to that devcluster's underlay, so its API server is reachable."""
    for name in (ns, up_ns):
        netns.delete(name)
        netns.add(name)
    try:
        if layout is not None:
            _attach(layout, ns, "eth0", [str(layout.underlay_v4[210])])
        netns.ip(ns, "link", "add", "kbdns0", "type", "veth", "peer", "name", "kbdns1", "netns", up_ns)
        netns.ip(ns, "addr", "add", "10.253.53.1/30", "dev", "kbdns0")
        netns.ip(up_ns, "addr", "add", f"{UP_ADDR}/30", "dev", "kbdns1")
        netns.ip(ns, "link", "set", "kbdns0", "up")
        netns.ip(up_ns, "link", "set", "kbdns1", "up")
        yield
    finally:
        for name in (ns, up_ns):
            netns.delete(name)


def upstream_server(ns: str, tmp_path: Path) -> subprocess.Popen:
    """The upstream for external names: knet dns serving `ext.example` (TTL 3600) at UP_ADDR:53 in `ns`."""
    python = str(ROOT / ".venv" / "bin" / "python")
    return subprocess.Popen(["nsenter", f"--net={netns.NETNS_DIR / ns}", "--", python, "-m", "bench.dns_knet",
                             "--services", str(EXTERNAL.services), "--zone", EXTERNAL.zone, "--ttl", "3600",
                             "--listen", f"{UP_ADDR}:53"], cwd=ROOT, stdout=(tmp_path / "up.log").open("w"),
                            stderr=subprocess.STDOUT)


def stop_all(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to all at once (knet dns and CoreDNS each keep answering for a lame-duck period), then wait;
    SIGKILL what is still there after 30 s."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_questions(cluster: Cluster, tmp_path: Path) -> None:
    """dnsperf's inputs: cluster.txt (4000 cluster questions) and external.txt (every upstream name once)."""
    (tmp_path / "cluster.txt").write_text("\n".join(cluster.cluster_questions(4000)) + "\n")
    (tmp_path / "external.txt").write_text("".join(f"{EXTERNAL.svc_name(i)} A\n" for i in range(EXTERNAL.services)))


def test_dnsperf_knet_against_coredns(bench: Bench, namespaces: None, tmp_path: Path) -> None:
    cluster = Cluster(services=bench.pick(500, 10_000), pods_per_service=10)
    rate, seconds = bench.pick(2000, 10_000), bench.pick(3, 10)
    python = str(ROOT / ".venv" / "bin" / "python")
    up = upstream_server(UP_NS, tmp_path)
    for zone, text in cluster.zone_files().items():
        (tmp_path / f"{zone}.zone").write_text(text)
    blocks = "".join(f"{zone}:{COREDNS_PORT} {{\n    bind 127.0.0.1\n    file {tmp_path / zone}.zone\n}}\n"
                     for zone in cluster.zone_files())
    (tmp_path / "Corefile").write_text(f"{blocks}.:{COREDNS_PORT} {{\n    bind 127.0.0.1\n"
                                       f"    forward . {UP_ADDR}:53\n    cache {CACHE_TTL}\n}}\n")
    write_questions(cluster, tmp_path)
    t0 = time.monotonic()
    servers = [start("knet", KNET_PORT, [python, "-m", "bench.dns_knet", "--services", str(cluster.services),
                                         "--pods-per-service", str(cluster.pods_per_service), "--listen",
                                         f"127.0.0.1:{KNET_PORT}", "--upstream", UP_ADDR], tmp_path / "knet.log"),
               start("CoreDNS", COREDNS_PORT, [str(upstream.bin_dir() / "coredns"), "-conf",
                                               str(tmp_path / "Corefile")], tmp_path / "coredns.log",
                     {"GOMAXPROCS": "1"})]
    bench.record(f"{cluster.services} Services, {cluster.services * cluster.pods_per_service} Pods: "
                 f"both servers loaded in {time.monotonic() - t0:.0f} s")
    try:
        figures = measure(bench, servers, tmp_path, rate, seconds)
    finally:
        stop_all([*(s.proc for s in servers), up])
    report(bench, figures, rate, "CoreDNS", ">= 1.00x", "< 2 ms")


# kubeadm's Corefile (its CoreDNS ConfigMap), with the bench's addresses: ports on loopback, the API server
# from the admin kubeconfig, the bench's upstream for `forward`.
KUBEADM_COREFILE = """.:{port} {{
    bind 127.0.0.1
    errors
    health 127.0.0.1:{health} {{
        lameduck 5s
    }}
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} {context}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    prometheus 127.0.0.1:{metrics}
    forward . {upstream}:53 {{
        max_concurrent 1000
    }}
    cache 30
    loop
    reload
    loadbalance
}}
"""
# knet's equivalent of that Corefile: the same TTL, pod records, upstream and cache.
KUBEADM_DNSCONFIG = f"""apiVersion: knet.io/v1alpha1
kind: DNSConfig
metadata: {{name: default}}
spec:
  ttl: 30
  podRecords: insecure
  upstream: {{servers: ["{UP_ADDR}"], maxConcurrent: 1000}}
  cache: {{successTTL: 30, denialTTL: 30}}
"""
DNSCONFIG_CRD = "dnsconfigs.knet.io"
KUBE_SIZES = (200, 5), (10_000, 10)  # quick, full: Services x endpoints; KNET_BENCH_DNS_KUBE=SERVICESxENDPOINTS


@pytest.fixture
def bench_namespaces(cluster: DevCluster) -> Iterator[str]:
    """Our namespace on the devcluster's underlay (so both servers reach its API server), the upstream's
    behind a veth; named with the cluster's prefix, so `knet devcluster down` removes what a killed run left."""
    layout = load_layout(cluster.name)
    with bench_pair(f"{layout.ns_prefix}bench-dns", f"{layout.ns_prefix}bench-dnsup", layout):
        yield f"{layout.ns_prefix}bench-dns"


def test_dnsperf_knet_against_coredns_kubernetes(bench: Bench, cluster: DevCluster, bench_namespaces: str,
                                                 tmp_path: Path) -> None:
    """The anchor clusters run: CoreDNS with kubeadm's Corefile (kubernetes plugin, cache 30) against knet dns,
    both watching the devcluster's API server, which holds the same Services and EndpointSlices for both."""
    ns, up_ns = bench_namespaces, bench_namespaces.replace("bench-dns", "bench-dnsup")
    chosen = os.environ.get("KNET_BENCH_DNS_KUBE")
    services, endpoints = (map(int, chosen.split("x")) if chosen else KUBE_SIZES[bench.full])
    data = Cluster(services=services, pods_per_service=endpoints)
    rate, seconds = bench.pick(2000, 10_000), bench.pick(3, 10)
    objects = DNSObjects(cluster.kubeconfig, data)
    had_crd = cluster.kubectl("get", "crd", DNSCONFIG_CRD, check=False).startswith("NAME")
    up = upstream_server(up_ns, tmp_path)
    servers: list[Server] = []
    try:
        t0 = time.monotonic()
        objects.create()
        bench.record(f"{services} Services x {endpoints} endpoints (EndpointSlices) created in the devcluster's API "
                     f"server in {time.monotonic() - t0:.0f} s")
        if not had_crd:  # before knet dns starts: it looks for the DNSConfig resource once, at startup
            cluster.kubectl("apply", "-f", str(ROOT / "manifests" / "crds" / "knet.io_dnsconfigs.yaml"))
            cluster.kubectl("wait", "--for=condition=Established", f"crd/{DNSCONFIG_CRD}", "--timeout=30s")
        cluster.apply(KUBEADM_DNSCONFIG)
        context = yaml.safe_load(Path(cluster.kubeconfig).read_text())["current-context"]
        (tmp_path / "Corefile").write_text(KUBEADM_COREFILE.format(
            port=COREDNS_PORT, health=8082, ready=8181, metrics=9153, kubeconfig=cluster.kubeconfig,
            context=context, upstream=UP_ADDR))
        write_questions(data, tmp_path)
        last = services - 1
        probes = (data.svc_name(last), f"{data.pod_ip(last, endpoints - 1).replace('.', '-')}.{data.svc_name(last)}")
        t0 = time.monotonic()
        servers.append(start("knet", KNET_PORT, [str(ROOT / ".venv" / "bin" / "knet"), "dns", "--kubeconfig",
                                                 cluster.kubeconfig, "--listen", f"127.0.0.1:{KNET_PORT}",
                                                 "--http", "127.0.0.1:8081"], tmp_path / "knet.log",
                             ns=ns, probes=probes))
        knet_s = time.monotonic() - t0
        t0 = time.monotonic()
        servers.append(start("CoreDNS-k8s", COREDNS_PORT, [str(upstream.bin_dir() / "coredns"), "-conf",
                                                           str(tmp_path / "Corefile")], tmp_path / "coredns.log",
                             {"GOMAXPROCS": "1"}, ns=ns, probes=probes))
        bench.record(f"from start to the last Service's endpoints answered: knet {knet_s:.1f} s, "
                     f"CoreDNS-k8s {time.monotonic() - t0:.1f} s")
        figures = measure(bench, servers, tmp_path, rate, seconds, ns)
    finally:
        stop_all([*(s.proc for s in servers), up])
        cluster.kubectl("delete", "dnsconfig", "default", "--ignore-not-found", check=False)
        if not had_crd:
            cluster.kubectl("delete", "crd", DNSCONFIG_CRD, "--wait=false", check=False)
        objects.delete()
    report(bench, figures, rate, "CoreDNS-k8s", ">= 2.00x", "> 1.00x")


Figures = dict[tuple[str, str], tuple[float, ...]]


def measure(bench: Bench, servers: list[Server], tmp_path: Path, rate: int, seconds: int, ns: str = NS) -> Figures:
    """Per server and kind of name (cluster, external): max QPS, then p99 and QPS done at `rate`; RSS; the echo
    loop's p99 as the floor and its max QPS as the ceiling of any Python server. Full mode repeats the dnsperf
    runs three times and keeps the medians, because the machine's 2 cores are shared."""
    python = str(ROOT / ".venv" / "bin" / "python")
    echo = subprocess.Popen(in_ns(ns, 0, python, "-c", ECHO, str(ECHO_PORT)))
    try:
        check_same_answers(tmp_path / "cluster.txt", ns)
        floor = dnsperf(ECHO_PORT, tmp_path / "cluster.txt", "-l", str(seconds), "-Q", str(rate), "-v", ns=ns)
        ceiling = dnsperf(ECHO_PORT, tmp_path / "cluster.txt", "-l", str(seconds), "-q", "100", ns=ns)
        for run in (floor, ceiling):
            assert run.completed > 0 and run.noerror == run.completed, run
        figures: Figures = {("echo", "p99"): (floor.p99_ms, ceiling.qps)}
        runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        for _ in range(bench.pick(1, 3)):
            for server in servers:
                for kind in ("cluster", "external"):
                    queries = tmp_path / f"{kind}.txt"
                    dnsperf(server.port, queries, "-n", "1", ns=ns)  # fill the caches (upstream answers, packed)
                    peak = dnsperf(server.port, queries, "-l", str(seconds), "-q", "100", ns=ns)
                    paced = dnsperf(server.port, queries, "-l", str(seconds), "-Q", str(rate), "-v", ns=ns)
                    for run in (peak, paced):
                        assert run.completed > 0 and run.noerror == run.completed, (server.name, kind, run)
                    runs.setdefault((server.name, kind), []).append((peak.qps, paced.p99_ms, paced.qps))
        for key, values in runs.items():
            figures[key] = tuple(statistics.median(column) for column in zip(*values, strict=True))
        for server in servers:
            figures[server.name, "rss"] = (server.rss_mib(),)
        return figures
    finally:
        echo.terminate()
        echo.wait(10)


def report(bench: Bench, figures: Figures, rate: int, anchor: str, qps_goal: str, p99_goal: str) -> None:
    """knet against `anchor` in the bench's one style, with the goals (cluster names) printed beside the ratios."""
    for kind in ("cluster", "external"):
        (kq, kp, kr), (cq, cp, cr) = figures["knet", kind], figures[anchor, kind]
        bench.record(f"{kind} names, max QPS on one core: knet {kq:.0f}, {anchor} {cq:.0f}, knet/{anchor} "
                     f"{ratio(cq, kq)}" + (f" (goal {qps_goal})" if kind == "cluster" else ""))
        goal = f" (goal {p99_goal})" if kind == "cluster" else ""
        bench.record(f"{kind} names, p99 at {rate} QPS: knet {kp:.2f} ms ({kr:.0f} QPS done), {anchor} {cp:.2f} ms "
                     f"({cr:.0f} QPS done), {anchor}/knet {ratio(kp, cp)}{goal}")
    floor, ceiling = figures["echo", "p99"]
    bench.record(f"latency floor, a UDP echo loop on the same CPU under the same dnsperf: p99 {floor:.2f} ms "
                 f"at {rate} QPS; its max QPS {ceiling:.0f} (the most a Python loop of recvfrom/sendto answers)")
    (km,), (cm,) = figures["knet", "rss"], figures[anchor, "rss"]
    bench.record(f"resident memory: knet {km:.0f} MiB, {anchor} {cm:.0f} MiB, {anchor}/knet {ratio(km, cm)} "
                 "(goal > 1.00x)")


def check_same_answers(queries: Path, ns: str = NS) -> None:
    """Both servers give the same answer records for a sample of the questions (TTL and order aside)."""
    lines = queries.read_text().splitlines()
    for line in lines[:: max(1, len(lines) // 40)]:
        name, qtype = line.split()
        sets = []
        for port in (KNET_PORT, COREDNS_PORT):
            out = subprocess.run(in_ns(ns, None, "dig", "+short", "-p", str(port), "@127.0.0.1", name, qtype),
                                 capture_output=True, text=True, check=True).stdout
            sets.append(sorted(out.split("\n")))
        assert sets[0] == sets[1] and sets[0] != [""], (line, sets)
