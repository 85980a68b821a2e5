"""dnsperf against knet dns and CoreDNS on the same data, one core each, in network namespaces of our own.

Topology: namespace `kbench-dns` holds both servers (knet dns on 127.0.0.1:5300, CoreDNS on
127.0.0.1:5301, each pinned to CPU 0 with taskset, CoreDNS with GOMAXPROCS=1) and dnsperf (CPU 1);
namespace `kbench-dnsup` holds the upstream for external names (knet dns serving the zone
`ext.example` at 10.253.53.2, behind a veth pair), so no query leaves our namespaces.

Data: `bench.dns_data.Cluster` (10k Services with 10 Pods each in full mode). knet dns reads it as API
objects; CoreDNS serves the same names with its `file` plugin from generated zone files, because its
kubernetes plugin needs an API server, and loading 100k Pods into the devcluster's would take longer
than the benchmark itself. The file plugin is CoreDNS's cheapest authoritative path (a tree lookup
of ready records), so the QPS anchor is, if anything, flattering to CoreDNS; its memory holds the
records rather than the kubernetes plugin's informer caches (see operators/dns/README.md).

Figures: for cluster names and for external names already in each server's cache, the QPS dnsperf
sustains with 100 queries outstanding and the p99 latency at a fixed 10k QPS (quick mode: 2k), beside
the floor of the machine (a UDP echo loop measured the same way); and the resident memory of each
server once loaded. Asserted: every server answered every question NOERROR
(so what was measured is answers, not errors). The goals are printed with their ratios.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.conftest import Bench, ratio
from bench.dns_data import Cluster
from bench.dns_knet import CACHE_TTL
from operators.devcluster import netns, upstream

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


def answers(port: int, name: str) -> bool:
    cmd = in_ns(NS, None, "dig", "+short", "+time=1", "+tries=1", "-p", str(port), "@127.0.0.1", name)
    out = subprocess.run(cmd, capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() != ""


def start(name: str, port: int, argv: list[str], log: Path, env: dict[str, str] | None = None,
          within: float = 600) -> Server:
    proc = subprocess.Popen(in_ns(NS, 0, *argv), cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + within
    while not answers(port, "svc-0.ns-0.svc.cluster.local"):
        assert proc.poll() is None, f"{name} exited: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"{name} not answering after {within}s"
        time.sleep(0.5)
    return Server(name, port, proc)


def dnsperf(port: int, queries: Path, *args: str) -> Run:
    """One dnsperf run from CPU 1; with `-v`, the p99 of the per-query latencies it prints."""
    out = subprocess.run(in_ns(NS, 1, "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), *args),
                         capture_output=True, text=True, check=True).stdout
    latencies = sorted(float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if line.startswith("> "))
    p99 = 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0
    noerror = re.search(r"Response codes:.*?NOERROR (\d+)", out)
    return Run(qps=float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1)), p99_ms=p99,
               completed=int(re.search(r"Queries completed:\s+(\d+)", out).group(1)),
               noerror=int(noerror.group(1)) if noerror else 0)


@pytest.fixture(scope="module")
def namespaces() -> Iterator[None]:
    for ns in (NS, UP_NS):
        netns.delete(ns)
        netns.add(ns)
    netns.ip(NS, "link", "add", "kbdns0", "type", "veth", "peer", "name", "kbdns1", "netns", UP_NS)
    netns.ip(NS, "addr", "add", "10.253.53.1/30", "dev", "kbdns0")
    netns.ip(UP_NS, "addr", "add", f"{UP_ADDR}/30", "dev", "kbdns1")
    netns.ip(NS, "link", "set", "kbdns0", "up")
    netns.ip(UP_NS, "link", "set", "kbdns1", "up")
    try:
        yield
    finally:
        for ns in (NS, UP_NS):
            netns.delete(ns)


def test_dnsperf_knet_against_coredns(bench: Bench, namespaces: None, tmp_path: Path) -> None:
    cluster = Cluster(services=bench.pick(500, 10_000), pods_per_service=10)
    rate, seconds = bench.pick(2000, 10_000), bench.pick(3, 10)
    python = str(ROOT / ".venv" / "bin" / "python")
    up = subprocess.Popen(["nsenter", f"--net={netns.NETNS_DIR / UP_NS}", "--", python, "-m", "bench.dns_knet",
                           "--services", str(EXTERNAL.services), "--zone", EXTERNAL.zone, "--ttl", "3600",
                           "--listen", f"{UP_ADDR}:53"], cwd=ROOT, stdout=(tmp_path / "up.log").open("w"),
                          stderr=subprocess.STDOUT)
    for zone, text in cluster.zone_files().items():
        (tmp_path / f"{zone}.zone").write_text(text)
    blocks = "".join(f"{zone}:{COREDNS_PORT} {{\n    bind 127.0.0.1\n    file {tmp_path / zone}.zone\n}}\n"
                     for zone in cluster.zone_files())
    (tmp_path / "Corefile").write_text(f"{blocks}.:{COREDNS_PORT} {{\n    bind 127.0.0.1\n"
                                       f"    forward . {UP_ADDR}:53\n    cache {CACHE_TTL}\n}}\n")
    (tmp_path / "cluster.txt").write_text("\n".join(cluster.cluster_questions(4000)) + "\n")
    (tmp_path / "external.txt").write_text("".join(f"{EXTERNAL.svc_name(i)} A\n" for i in range(EXTERNAL.services)))
    t0 = time.monotonic()
    servers = [start("knet", KNET_PORT, [python, "-m", "bench.dns_knet", "--services", str(cluster.services),
                                         "--pods-per-service", str(cluster.pods_per_service), "--listen",
                                         f"127.0.0.1:{KNET_PORT}", "--upstream", UP_ADDR], tmp_path / "knet.log"),
               start("CoreDNS", COREDNS_PORT, [str(upstream.bin_dir() / "coredns"), "-conf",
                                               str(tmp_path / "Corefile")], tmp_path / "coredns.log",
                     {"GOMAXPROCS": "1"})]
    bench.record(f"{cluster.services} Services, {cluster.services * cluster.pods_per_service} Pods: "
                 f"both servers loaded in {time.monotonic() - t0:.0f} s")
    echo = subprocess.Popen(in_ns(NS, 0, python, "-c", ECHO, str(ECHO_PORT)))
    try:
        check_same_answers(tmp_path / "cluster.txt")
        floor = dnsperf(ECHO_PORT, tmp_path / "cluster.txt", "-l", str(seconds), "-Q", str(rate), "-v")
        assert floor.completed > 0 and floor.noerror == floor.completed, floor
        figures: dict[tuple[str, str], tuple[float, ...]] = {}
        for server in servers:
            for kind in ("cluster", "external"):
                queries = tmp_path / f"{kind}.txt"
                dnsperf(server.port, queries, "-n", "1")  # fill the caches (upstream answers, packed replies)
                peak = dnsperf(server.port, queries, "-l", str(seconds), "-q", "100")
                paced = dnsperf(server.port, queries, "-l", str(seconds), "-Q", str(rate), "-v")
                for run in (peak, paced):
                    assert run.completed > 0 and run.noerror == run.completed, (server.name, kind, run)
                figures[server.name, kind] = (peak.qps, paced.p99_ms, paced.qps)
            figures[server.name, "rss"] = (server.rss_mib(),)
    finally:
        for proc in [*(s.proc for s in servers), up, echo]:
            proc.terminate()
            proc.wait(10)
    for kind in ("cluster", "external"):
        (kq, kp, kr), (cq, cp, cr) = figures["knet", kind], figures["CoreDNS", kind]
        bench.record(f"{kind} names, max QPS on one core: knet {kq:.0f}, CoreDNS {cq:.0f}, knet/CoreDNS "
                     f"{ratio(cq, kq)}" + (" (goal >= 1.00x)" if kind == "cluster" else ""))
        goal = " (goal < 2 ms)" if kind == "cluster" else ""
        bench.record(f"{kind} names, p99 at {rate} QPS: knet {kp:.2f} ms ({kr:.0f} QPS done), CoreDNS {cp:.2f} ms "
                     f"({cr:.0f} QPS done), CoreDNS/knet {ratio(kp, cp)}{goal}")
    bench.record(f"latency floor, a UDP echo loop on the same CPU under the same dnsperf: p99 {floor.p99_ms:.2f} ms "
                 f"at {rate} QPS")
    (km,), (cm,) = figures["knet", "rss"], figures["CoreDNS", "rss"]
    bench.record(f"resident memory: knet {km:.0f} MiB, CoreDNS {cm:.0f} MiB, CoreDNS/knet {ratio(km, cm)} "
                 "(goal > 1.00x)")


def check_same_answers(queries: Path) -> None:
    """Both servers give the same answer records for a sample of the questions (TTL and order aside)."""
    lines = queries.read_text().splitlines()
    for line in lines[:: max(1, len(lines) // 40)]:
        name, qtype = line.split()
        sets = []
        for port in (KNET_PORT, COREDNS_PORT):
            out = subprocess.run(in_ns(NS, None, "dig", "+short", "-p", str(port), "@127.0.0.1", name, qtype),
                                 capture_output=True, text=True, check=True).stdout
            sets.append(sorted(out.split("\n")))
        assert sets[0] == sets[1] and sets[0] != [""], (line, sets)
