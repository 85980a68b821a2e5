"""bench/proxy: knet agent against upstream kube-proxy (nftables mode), both run on identical fresh bench
node namespaces against the devcluster's API server, one after the other, at each size.

Per proxy and size: full sync from process start until the kernel's dispatch map holds every Service
(kube-proxy: its map polled; knet: its /readyz polled, since listing its 16 shard maps at every poll
would take the CPU it needs, then its maps checked once), the proxy's own full-sync duration metric,
single-endpoint incremental update (the probe Service's EndpointSlice moved between two backend ports;
time from the API write until a new connection from the client namespace reaches the new port)
p50/p99, the proxies' network-programming latency metric for those changes, RSS, and first-packet
connect latency through the rules.
Sizes: quick 200 Services, full 100, 1k, 10k and 30k (10 endpoints each); KNET_BENCH_PROXY_SIZES=1000,10000
picks others.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bench.conftest import Bench, ratio
from bench.proxy_nodes import ANSWERS, BACKEND_IP, BenchNode, http_ok, map_ips, metrics, rss_mib, stop, wait_until
from bench.proxy_objects import Objects
from operators.devcluster import upstream
from operators.devcluster.state import load_layout
from operators.proxy.nftables import SHARDS, shard_name
from tests.e2e.harness import Cluster

REPO = Path(__file__).parents[1]
FULL_SIZES = (100, 1000, 10000, 30000)
FULL_SYNC_TIMEOUT = 900.0  # a proxy that takes longer is recorded as "> timeout"


@dataclass
class Proxy:
    name: str
    node: BenchNode
    tables: tuple[str, ...]  # "family name" of its nft tables
    dispatch: str  # its ClusterIP verdict map (in each table)
    ready: str  # a path on its health port that answers 200 once the first full sync is in; "": poll the map
    full_metric: str  # sum of its full-sync duration histogram
    latency_metric: str  # its network-programming histogram: name{labels} after _sum and _count
    partial_metric: str  # its incremental (partial) sync duration histogram, the same way

    def argv(self, cluster: Cluster, addr: str, workdir: Path) -> list[str]:
        if self.name == "knet":
            return [str(REPO / ".venv/bin/knet"), "agent", "--kubeconfig", cluster.kubeconfig, "--node-name",
                    self.node.node_name, "--metrics-addr", f"{addr}:10249", "--health-addr", f"{addr}:10256",
                    "--no-network-policy"]
        config = workdir / "kube-proxy.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "mode": "nftables", "hostnameOverride": self.node.node_name, "clusterCIDR": "10.244.0.0/16",
            "clientConnection": {"kubeconfig": cluster.kubeconfig, "qps": 50, "burst": 100},
            "metricsBindAddress": f"{addr}:10249", "healthzBindAddress": f"{addr}:10256",
            "nftables": {"minSyncPeriod": "1s", "syncPeriod": "1h"},
            "conntrack": {"maxPerCore": 0},
        }))
        return [str(upstream.bin_dir() / "kube-proxy"), "--config", str(config)]


def _node_object(node: BenchNode, addr: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node.node_name},
            "spec": {"podCIDR": "10.244.240.0/24", "podCIDRs": ["10.244.240.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": addr}]}}


def _mean(before: dict[str, float], after: dict[str, float], metric: str) -> float:
    """Mean of a histogram's observations between two scrapes (metric: `name` or `name{labels}`)."""
    name, _, labels = metric.partition("{")
    count, total = (f"{name}_{what}{'{' + labels if labels else ''}" for what in ("count", "sum"))
    n = after.get(count, 0) - before.get(count, 0)
    return (after.get(total, 0) - before.get(total, 0)) / n if n else 0.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Figures:
    full: float  # seconds from start to every Service in the kernel (inf: timed out)
    full_metric: float  # the proxy's own full-sync duration
    incr_p50: float
    incr_p99: float
    write_p99: float  # the API write of a change alone (the first part of an update, the same for both proxies)
    slowest: list[tuple[float, float]]  # the three slowest updates: (update, its API write), seconds
    programming: float  # mean network-programming latency it reports for the changes
    partial: float  # mean duration of its incremental syncs during the changes
    rss: float  # MiB
    connect_p50: float  # seconds
    connect_p99: float


def _measure(proxy: Proxy, cluster: Cluster, objects: Objects, addr: str, workdir: Path, changes: int,
             state: dict[str, int]) -> Figures:
    node = proxy.node
    subprocess.run(["ip", "netns", "exec", node.ns, "nft", "flush", "ruleset"], check=True)
    wanted = set(objects.cluster_ips.values())
    url = f"http://{addr}:10249/metrics"
    prober = node.prober(objects.cluster_ips["probe"])
    t0 = time.monotonic()
    proc = node.spawn(proxy.argv(cluster, addr, workdir), log=str(workdir / f"{proxy.name}.log"))
    try:
        def in_kernel() -> bool:
            return wanted <= set().union(*(map_ips(node.ns, t, proxy.dispatch) for t in proxy.tables))

        ready = (lambda: http_ok(f"http://{addr}:10256{proxy.ready}")) if proxy.ready else in_kernel
        try:
            done = wait_until(ready, FULL_SYNC_TIMEOUT, interval=0.1)
        except AssertionError:
            return Figures(float("inf"), 0, 0, 0, 0, [], 0, 0, rss_mib(proc.pid), 0, 0)
        full = done - t0
        assert in_kernel(), f"{proxy.name} was ready before every Service was in the kernel"
        prober.wait_for(ANSWERS[state["port"]])
        before = metrics(url)
        incr: list[float] = []
        writes: list[float] = []
        for _ in range(changes):
            time.sleep(1.2)  # past both proxies' minimum sync period: each change is programmed alone
            state["port"] = 8081 if state["port"] == 8080 else 8080
            t = time.monotonic()
            objects.point_probe(state["port"])
            writes.append(time.monotonic() - t)
            incr.append(prober.wait_for(ANSWERS[state["port"]]) - t)
        time.sleep(1.5)  # metrics are observed after the transaction
        after = metrics(url)
        (workdir / f"{proxy.name}.metrics").write_text("\n".join(f"{k} {v}" for k, v in after.items()))
        connects = prober.connect_times(200)
        assert len(connects) == 200, "connections to the probe Service failed"
        return Figures(full, after.get(proxy.full_metric, 0), _pct(incr, 0.5), _pct(incr, 0.99), _pct(writes, 0.99),
                       sorted(zip(incr, writes, strict=True), reverse=True)[:3],
                       _mean(before, after, proxy.latency_metric), _mean(before, after, proxy.partial_metric),
                       rss_mib(proc.pid), _pct(connects, 0.5), _pct(connects, 0.99))
    finally:
        stop(proc)
        stop(prober.proc)


def test_proxy(cluster: Cluster, bench: Bench, tmp_path: Path) -> None:
    layout = load_layout(cluster.name)
    chosen = os.environ.get("KNET_BENCH_PROXY_SIZES")
    sizes = [int(n) for n in chosen.split(",")] if chosen else list(FULL_SIZES) if bench.full else [200]
    changes = bench.pick(5, 100)  # with 100 the p99 is the second slowest change, not the slowest
    nodes = {"knet": BenchNode(layout, "knet"), "kube-proxy": BenchNode(layout, "kp")}
    proxies = [
        Proxy("knet", nodes["knet"], tuple(f"inet {shard_name(i)}" for i in range(SHARDS)), "service-ips-v4",
              "/readyz",
              'knet_proxy_sync_proxy_rules_duration_seconds_sum{kind="full"}',
              "knet_proxy_network_programming_duration_seconds",
              'knet_proxy_sync_proxy_rules_duration_seconds{kind="incremental"}'),
        Proxy("kube-proxy", nodes["kube-proxy"], ("ip kube-proxy",), "service-ips", "",
              'kubeproxy_sync_full_proxy_rules_duration_seconds_sum{ip_family="IPv4"}',
              'kubeproxy_network_programming_duration_seconds{ip_family="IPv4"}',
              'kubeproxy_sync_partial_proxy_rules_duration_seconds{ip_family="IPv4"}'),
    ]
    addrs = {p.name: p.node.create(i) for i, p in enumerate(proxies)}
    backends = [p.node.backend() for p in proxies]
    objects = Objects(cluster.kubeconfig, layout.node_names[-1])
    try:
        for p in proxies:
            cluster.apply(yaml.safe_dump(_node_object(p.node, addrs[p.name])))
        objects.setup()
        objects.probe(BACKEND_IP)
        state = {"port": 8080}
        results: dict[int, dict[str, Figures]] = {}
        for n in sizes:
            t = time.monotonic()
            objects.grow(n)
            bench.record(f"{n} Services x 10 endpoints created in {time.monotonic() - t:.0f}s")
            results[n] = {p.name: _measure(p, cluster, objects, addrs[p.name], tmp_path, changes, state)
                          for p in proxies}
            _report(bench, n, results[n])
            if split := _first_full_sync(tmp_path / "knet.log"):
                bench.record(f"{n:>6} Services  knet's first full sync, from its log: {split}")
        ours, theirs = results[sizes[0]]["knet"], results[sizes[0]]["kube-proxy"]
        assert ours.full != float("inf"), "knet did not program every Service"
        assert theirs.full != float("inf") or bench.full, "kube-proxy did not program every Service"
        for name in ("knet", "kube-proxy"):
            by_size = ", ".join(f"{results[n][name].connect_p50 * 1e6:.0f} / {results[n][name].connect_p99 * 1e6:.0f}"
                                f" us at {n}" for n in sizes)
            bench.record(f"connect latency p50 / p99 through {name}'s rules: {by_size} Services (goal: flat)")
    finally:
        for proc in backends:
            stop(proc)
        for p in proxies:
            p.node.delete()
            cluster.kubectl("delete", "node", p.node.node_name, "--ignore-not-found", check=False)
        objects.delete()


def _first_full_sync(log: Path) -> str:
    """How the agent's first full sync split its time (it logs the model and the rest apart)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return next((line.split("full sync: ", 1)[1] for line in lines if "full sync: " in line), "")


def _report(bench: Bench, n: int, r: dict[str, Figures]) -> None:
    k, u = r["knet"], r["kube-proxy"]

    def row(what: str, ours: float, theirs: float, unit: str, scale: float = 1.0, goal: str = "") -> None:
        t = f">{FULL_SYNC_TIMEOUT:.0f}" if theirs == float("inf") else f"{theirs * scale:.1f}"
        bench.record(f"{n:>6} Services  {what:<34} knet {ours * scale:9.1f}{unit}  kube-proxy {t:>9}{unit}  "
                     f"ratio {ratio(ours, theirs)}{goal}")

    row("full sync, start -> all in kernel", k.full, u.full, "s", goal="  (goal at 10k: < 2s, >= 3x)")
    row("full sync, its own metric", k.full_metric, u.full_metric, "s")
    row("endpoint update p50", k.incr_p50, u.incr_p50, "ms", 1e3)
    row("endpoint update p99", k.incr_p99, u.incr_p99, "ms", 1e3, "  (goal at 10k: < 50ms, >= 3x)")
    row("  its API write alone, p99", k.write_p99, u.write_p99, "ms", 1e3)
    for f, name in ((k, "knet"), (u, "kube-proxy")):
        slowest = ", ".join(f"{total * 1e3:.1f} ms (write {write * 1e3:.1f})" for total, write in f.slowest)
        bench.record(f"{n:>6} Services  {name}'s slowest endpoint updates: {slowest}")
    row("programming latency metric (mean)", k.programming, u.programming, "ms", 1e3)
    row("incremental sync metric (mean)", k.partial, u.partial, "ms", 1e3)
    row("RSS", k.rss, u.rss, "MiB")
    row("connect p50", k.connect_p50, u.connect_p50, "us", 1e6)
    row("connect p99", k.connect_p99, u.connect_p99, "us", 1e6)


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
