"""wrk through several proxies in the benchmark's namespace, taking turns over several rounds, with what each
request cost: shared by the ingress and gateway benches.

wrk runs with 1 thread and 16 connections on CPU 1; every proxy runs on CPU 0 beside the backend, so each
gets one core and the same placement. A ratio is the median of the rounds' ratios, so that a burst of load
elsewhere on the machine hits one round rather than one side. The CPU time per request of the proxy and of
the backend is the cost behind the throughput, which load elsewhere barely changes; its inverse is the
proxy's requests per second per core."""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.conftest import Bench
from bench.ingress_nginx import BACKEND_PORTS, HOST, TRAEFIK_PORT, Namespace, cpu_seconds, get, in_ns, preemptions
from bench.ingress_wrk import WrkResult, parse_wrk, wrk_command


@dataclass(frozen=True)
class Proxy:
    pid: int  # the process whose CPU time counts: nginx's one worker, Traefik's whole process
    port: int


def wrk(port: int, seconds: float) -> WrkResult:
    """One wrk run against bench.test on `port`, from CPU 1."""
    proc = subprocess.run(in_ns(*wrk_command(f"http://127.0.0.1:{port}/", seconds, 16, HOST), cpu=1),
                          capture_output=True, text=True, timeout=seconds + 30, check=False)
    return parse_wrk(proc.stdout)


@dataclass
class Rounds:
    seconds: float
    count: int
    results: dict[str, list[WrkResult]] = field(default_factory=dict)
    cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (proxy, backend) us per request
    switched: dict[str, list[float]] = field(default_factory=dict)  # the proxy's preemptions per request

    def failed(self) -> dict[str, list[WrkResult]]:
        """The proxies with a round that served nothing or answered an error."""
        return {n: runs for n, runs in self.results.items() if any(r.requests == 0 or r.failed for r in runs)}

    def best(self, name: str) -> WrkResult:
        return max(self.results[name], key=lambda r: r.rps)

    def p99_ms(self, name: str) -> float:
        return min(r.p99_seconds for r in self.results[name]) * 1000

    def per_request(self, name: str) -> tuple[float, float]:
        """Median CPU microseconds per request of the proxy and of the backend."""
        return statistics.median(c[0] for c in self.cpu[name]), statistics.median(c[1] for c in self.cpu[name])

    def per_core(self, name: str) -> float:
        """Requests per second one core of the proxy's would serve (its CPU per request, inverted)."""
        us = self.per_request(name)[0]
        return 1e6 / us if us > 0 else 0.0

    def ratio(self, a: str, b: str) -> tuple[float, str]:
        """The median of the rounds' requests/s ratios a/b, and each round's."""
        each = sorted(x.rps / y.rps for x, y in zip(self.results[a], self.results[b], strict=True))
        return statistics.median(each), " ".join(f"{r:.2f}" for r in each)

    def line(self, name: str) -> str:
        """The figures of one proxy, as the benches print them."""
        proxy, backend = self.per_request(name)
        return (f"{name}: {self.best(name).rps:.0f} req/s, p99 {self.p99_ms(name):.2f} ms; CPU per request (median) "
                f"{proxy:.1f} us + backend {backend:.1f} us, preempted "
                f"{statistics.median(self.switched[name]) * 100:.0f} times per 100 requests (best of "
                f"{self.count}x{self.seconds:g}s, 1 core, 16 connections)")


def run_rounds(proxies: Mapping[str, Proxy], backend: int, seconds: float, count: int) -> Rounds:
    """`count` rounds of `seconds` through each proxy in turn, each round starting one proxy later."""
    out = Rounds(seconds, count, {n: [] for n in proxies}, {n: [] for n in proxies}, {n: [] for n in proxies})
    order = list(proxies)
    for i in range(count):
        for name in order[i % len(order):] + order[:i % len(order)]:
            proxy = proxies[name]
            before = cpu_seconds(proxy.pid), cpu_seconds(backend), preemptions(proxy.pid)
            out.results[name].append(run := wrk(proxy.port, seconds))
            n = max(run.requests, 1)
            out.cpu[name].append(((cpu_seconds(proxy.pid) - before[0]) / n * 1e6,
                                  (cpu_seconds(backend) - before[1]) / n * 1e6))
            out.switched[name].append((preemptions(proxy.pid) - before[2]) / n)
    return out


def measure(bench: Bench, ns: Namespace, root: Path, proxies: dict[str, Proxy], traefik: Path | None, count: int,
            label: str = "") -> Rounds:
    """Traefik (when built) started beside `proxies`, every one checked to reach the backend, `count` rounds
    of 3 s (10 s in full mode) run, and each one's figures recorded after `label`."""
    if traefik is not None:
        proxies["Traefik"] = Proxy(ns.traefik(root / "traefik", traefik, TRAEFIK_PORT), TRAEFIK_PORT)
    assert all(get(p.port) == (200, str(BACKEND_PORTS[0])) for p in proxies.values())
    rounds = run_rounds(proxies, ns.backend, bench.pick(3, 10), count)
    assert not rounds.failed(), rounds.failed()
    for name in proxies:
        bench.record(f"{label}{rounds.line(name)}")
    return rounds


def against_traefik(rounds: Rounds, knet: str) -> str:
    """The anchor's line: knet's requests/s against Traefik's (both on one core), its requests per core-second
    against Traefik's (goal >= 1.5) and Traefik's p99 against knet's (goal above 1: knet's lower)."""
    goal, each = rounds.ratio(knet, "Traefik")
    return (f"{knet} / Traefik: requests/s on one core, median {goal:.2f} of {each}; requests per core-second "
            f"(CPU per request) {rounds.per_core(knet) / rounds.per_core('Traefik'):.2f} (goal >= 1.5); p99 "
            f"Traefik/{knet} {rounds.p99_ms('Traefik') / rounds.p99_ms(knet):.2f} (goal > 1)")
