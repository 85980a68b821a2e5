"""The devcluster's supervisor: one detached process per cluster that starts the control
plane and the node runtimes, restarts them if they die (as a kubelet restarts static pods),
and stops them all on SIGTERM. `up` waits on the status file it writes.

While starting, any child that exits fails the whole start with a one-line cause, so a
half-started cluster never stays up; once ready, children are restarted with backoff.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

from . import clusterinfo, controlplane, network, upstream
from .controlplane import ProcSpec
from .layout import Layout
from .netns import NETNS_DIR
from .nodes import api, nodes_ready, register_nodes
from .state import load_layout


def last_error(log: Path) -> str:
    """The most telling line of a log: its last error-looking line, else its last line."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    for ln in reversed(lines[-200:]):
        low = ln.lower()
        if any(w in low for w in ("error", "failed", "fatal", "panic", "address already in use")):
            return ln[:300]
    return lines[-1][:300] if lines else "empty log"


def check_ports(spec: ProcSpec) -> None:
    """Fail early, naming the holder, if a port the process needs is taken in its namespace."""
    if not spec.ports:
        return
    out = subprocess.run(
        ["nsenter", f"--net={NETNS_DIR / spec.ns}", "--", "ss", "-Htlnp"], capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        cols = line.split()
        port = cols[3].rsplit(":", 1)[-1] if len(cols) > 3 else ""
        if port.isdigit() and int(port) in spec.ports:
            holder = cols[5] if len(cols) > 5 else "another process"
            raise RuntimeError(f"port {port} needed by {spec.name} is already in use in {spec.ns} ({holder})")


@dataclass
class Child:
    spec: ProcSpec
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 1.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.spec.log.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.spec.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={NETNS_DIR / self.spec.ns}", "--", *self.spec.argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.started_at = time.monotonic()

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def node_runtime_spec(layout: Layout, node: str) -> ProcSpec:
    argv = (
        sys.executable,
        "-m",
        "operators.devcluster.noderuntime",
        "--cluster",
        layout.name,
        "--node",
        node,
    )
    return ProcSpec(f"node-runtime/{node}", argv, layout.node_ns(node), layout.logs / f"node-{node}.log")


class Supervisor:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.status_file = layout.dir / "supervisor.json"
        self.children: list[Child] = []
        self.stopping = False
        self.api_ready_at = 0.0
        self.routed: dict[str, tuple[list[str], list[str]]] = {}
        self.api: client.ApiClient | None = None

    def write_status(self, phase: str, error: str = "") -> None:
        status = {
            "phase": phase,
            "error": error,
            "pid": os.getpid(),
            "api_ready_at": self.api_ready_at,
            "children": {
                c.spec.name: {"pid": c.proc.pid if c.proc else None, "restarts": c.restarts} for c in self.children
            },
        }
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(status, indent=1))
        tmp.replace(self.status_file)

    def api_ready(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.layout.pki / "ca.crt"))
        ctx.load_cert_chain(self.layout.pki / "admin.crt", self.layout.pki / "admin.key")
        try:
            with urllib.request.urlopen(f"{self.layout.api_url}/readyz", context=ctx, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def check_children(self) -> Child | None:
        for c in self.children:
            if c.exited() is not None:
                return c
        return None

    def wait_for(self, what: str, cond: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stopping:
                raise RuntimeError("stopped while starting")
            if dead := self.check_children():
                why = last_error(dead.spec.log)
                raise RuntimeError(f"{dead.spec.name} exited with code {dead.exited()} while starting: {why}")
            if cond():
                return
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")

    def launch(self, spec: ProcSpec) -> Child:
        check_ports(spec)
        c = Child(spec)
        self.children.append(c)
        c.start()
        return c

    def start(self) -> None:

        bins = upstream.bin_dir()
        cp = controlplane.specs(self.layout, bins)
        self.launch(cp[0])
        self.launch(cp[1])
        self.wait_for("kube-apiserver /readyz", self.api_ready, 90)
        self.api_ready_at = time.time()
        self.write_status("starting")
        register_nodes(self.layout)
        clusterinfo.publish(self.layout)
        self.api = api(self.layout)
        for spec in cp[2:]:
            self.launch(spec)
        for node in self.layout.node_names:
            self.launch(node_runtime_spec(self.layout, node))
        self.wait_for("every node Ready with a podCIDR", lambda: self.route_nodes() and nodes_ready(self.layout), 90)

    def route_nodes(self) -> bool:
        """The devcluster's CNI part (kindnet's job): route each node's peers' podCIDRs via their addresses."""
        core = client.CoreV1Api(self.api)
        peers = {}
        for n in core.list_node().items:
            addrs = [a.address for a in n.status.addresses or [] if a.type == "InternalIP"]
            if not addrs and n.metadata.name in self.layout.node_names:
                addrs = self.layout.node_ips(self.layout.node_names.index(n.metadata.name))
            peers[n.metadata.name] = (n.spec.pod_cidrs or [], addrs)
        if peers != self.routed:
            for node in self.layout.node_names:
                network.route_pod_cidrs(self.layout, node, peers)
            self.routed = peers
        return True

    def stop_all(self) -> None:
        # node runtimes first (they stop their pods), then the control plane in reverse order
        for c in reversed(self.children):
            c.stop(timeout=15 if c.spec.name.startswith("node-runtime") else 10)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        self.write_status("starting")
        try:
            self.start()
        except Exception as e:  # noqa: BLE001 - any cause ends the start, reported in one line
            self.stop_all()
            self.write_status("failed", str(e).splitlines()[0] if str(e) else type(e).__name__)
            return 1
        self.write_status("ready")
        last_route = 0.0
        while not self.stopping:
            self.restart_dead()
            if time.monotonic() - last_route > 2:
                last_route = time.monotonic()
                try:
                    self.route_nodes()
                except Exception as e:  # noqa: BLE001 - the API may be restarting; try again soon
                    print(f"route sync failed: {e!r}", flush=True)
            time.sleep(0.5)
        self.stop_all()
        self.write_status("stopped")
        return 0

    def restart_dead(self) -> None:
        now = time.monotonic()
        for c in self.children:
            code = c.exited()
            if code is None:
                if now - c.started_at > 60:
                    c.backoff = 1.0
                continue
            if c.next_start == 0.0:
                print(f"{c.spec.name} exited with code {code}: {last_error(c.spec.log)}; restarting", flush=True)
                c.next_start = now + c.backoff
                c.backoff = min(c.backoff * 2, 30)
            elif now >= c.next_start:
                c.restarts += 1
                c.next_start = 0.0
                c.start()
                self.write_status("ready")

    def _on_term(self, *_: object) -> None:
        self.stopping = True


def main() -> None:
    layout = load_layout(sys.argv[1])
    sys.exit(Supervisor(layout).run())


if __name__ == "__main__":
    main()
