"""Bench node namespaces for the Service proxy benchmark: one per proxy under test, built alike.

Each bench node is a fresh network namespace attached to the devcluster's underlay like the real
nodes (so the proxy reaches the API server and we reach its metrics), with two namespaces behind it:
a client and a backend (listeners answering "A" on 8080 and "B" on 8081). All names start with the
cluster's namespace prefix, so `knet devcluster down` removes whatever a killed run left behind;
every address lives inside these namespaces.

`Prober` runs in the client namespace and talks over a pipe: `wait ANSWER` connects to the probe
Service until that backend answers (the kernel really holds the change), `lat N` times N connects.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from operators.devcluster import netns
from operators.devcluster.layout import Layout
from operators.devcluster.network import _attach

CLIENT_NET, BACKEND_NET = "10.244.240", "10.244.241"
BACKEND_IP = f"{BACKEND_NET}.2"
ANSWERS = {8080: "A", 8081: "B"}

BACKEND = r"""
import socket, sys, threading
def serve(port, answer):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(512)
    while True:
        conn, _ = srv.accept()
        conn.sendall(answer)
        conn.close()
threading.Thread(target=serve, args=(8081, b"B"), daemon=True).start()
serve(8080, b"A")
"""

PROBER = r"""
import socket, sys, time
vip = sys.argv[1]
def ask():
    s = socket.socket()
    s.settimeout(0.5)
    try:
        t = time.perf_counter()
        s.connect((vip, 80))
        took = time.perf_counter() - t
        return s.recv(10).decode(), took
    except OSError:
        return "", 0.0
    finally:
        s.close()
for line in sys.stdin:
    cmd, arg = line.split()
    if cmd == "wait":
        deadline = time.monotonic() + 120
        while ask()[0] != arg and time.monotonic() < deadline:
            time.sleep(0.002)
        print(time.monotonic() if time.monotonic() < deadline else -1, flush=True)
    else:
        times = [ask() for _ in range(int(arg))]
        print(" ".join(f"{t:.6f}" for a, t in times if a), flush=True)
"""


@dataclass
class BenchNode:
    """One bench node: `index` picks its underlay address (172.30.k.(200+index)) and its namespaces."""

    layout: Layout
    name: str  # also the Node object's name and the suffix of its namespaces

    @property
    def ns(self) -> str:
        return f"{self.layout.ns_prefix}bench-{self.name}"

    @property
    def client_ns(self) -> str:
        return f"{self.ns}-cl"

    @property
    def backend_ns(self) -> str:
        return f"{self.ns}-be"

    @property
    def node_name(self) -> str:
        return f"{self.layout.name}-bench-{self.name}"

    def address(self, index: int) -> str:
        return str(self.layout.underlay_v4[200 + index])

    def create(self, index: int) -> str:
        """Build the namespaces (replacing leftovers); the node's underlay address."""
        self.delete()
        for ns in (self.ns, self.client_ns, self.backend_ns):
            netns.add(ns)
            netns.ip(ns, "link", "set", "lo", "up")
        _attach(self.layout, self.ns, "eth0", [self.address(index)])
        netns.sysctl(self.ns, net__ipv4__ip_forward="1", net__ipv4__conf__all__rp_filter="0",
                     net__ipv4__conf__default__rp_filter="0")
        for ns, net, link in ((self.client_ns, CLIENT_NET, "cl"), (self.backend_ns, BACKEND_NET, "be")):
            netns.ip(self.ns, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
            netns.ip(self.ns, "addr", "add", f"{net}.1/24", "dev", link)
            netns.ip(self.ns, "link", "set", link, "up")
            netns.ip(ns, "addr", "add", f"{net}.2/24", "dev", "eth0")
            netns.ip(ns, "link", "set", "eth0", "up")
            netns.ip(ns, "route", "add", "default", "via", f"{net}.1")
        return self.address(index)

    def delete(self) -> None:
        for ns in (self.client_ns, self.backend_ns, self.ns):
            if netns.exists(ns):
                netns.delete(ns)

    def spawn(self, argv: list[str], ns: str | None = None, log: str | None = None,
              stdin: int | None = None, stdout: int | None = None) -> subprocess.Popen:
        out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed with the process)
        return subprocess.Popen(["ip", "netns", "exec", ns or self.ns, *argv], stdin=stdin,
                                stdout=stdout or out, stderr=out, text=True, start_new_session=True)

    def backend(self) -> subprocess.Popen:
        return self.spawn([sys.executable, "-c", BACKEND], ns=self.backend_ns)

    def prober(self, vip: str) -> Prober:
        return Prober(self.spawn([sys.executable, "-c", PROBER, vip], ns=self.client_ns,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE))


class Prober:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    def _ask(self, line: str) -> str:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def wait_for(self, answer: str) -> float:
        """Monotonic time (system-wide clock) at which the probe Service first answered `answer`."""
        at = float(self._ask(f"wait {answer}"))
        assert at > 0, f"the probe Service never answered {answer}"
        return at

    def connect_times(self, n: int) -> list[float]:
        """Seconds per successful connect (SYN to established) of n fresh connections."""
        return [float(t) for t in self._ask(f"lat {n}").split()]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group we started, then SIGKILL if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def metrics(url: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value} (empty when the endpoint does not answer yet)."""
    try:
        text = urllib.request.urlopen(url, timeout=2).read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def http_ok(url: str) -> bool:
    """Whether a GET answers 200 (False while nothing listens)."""
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


def map_ips(ns: str, table: str, name: str) -> set[str]:
    """The first key field (the address) of every element of an nft verdict map in `ns` (empty if absent)."""
    proc = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "map", *table.split(), name],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return set()
    ips: set[str] = set()
    for item in json.loads(proc.stdout)["nftables"]:
        for elem in item.get("map", {}).get("elem", []):
            ips.add(elem[0]["concat"][0])
    return ips


def wait_until(cond, timeout: float, interval: float = 0.05) -> float:
    """Poll until `cond()` holds; the monotonic time it first did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return time.monotonic()
        time.sleep(interval)
    raise AssertionError(f"not reached in {timeout}s")
