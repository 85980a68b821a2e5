"""One thread per pod on a node: sandbox, volumes, init and app containers as host processes
(through the shim), probes, restarts with backoff, status, and graceful deletion."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import images, podspec, sandbox
from .podhost import PodHost
from .podspec import ConfigError, CState
from .probes import ProbeState, check
from .volumes import Volumes

Obj = dict[str, Any]
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0  # the kubelet's CrashLoopBackOff schedule
# what every container runs from: the virtual environment and the package (possibly under /tmp)
KEEP = sorted({sys.prefix, str(Path(__file__).resolve().parents[2])})


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Container:
    spec: Obj
    st: CState
    init: bool = False
    proc: subprocess.Popen[bytes] | None = None
    next_start: float = 0.0
    backoff: float = BACKOFF_START
    probes: dict[str, ProbeState] = field(default_factory=dict)
    done: bool = False  # an init container that succeeded
    plan: Obj = field(default_factory=dict)  # the shim plan it was started with (for exec and probes)

    @property
    def name(self) -> str:
        return self.spec["name"]


def shim_argv(argv: list[str] | tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "operators.devcluster.shim", *argv]


class PodWorker(threading.Thread):
    def __init__(self, host: PodHost, pod: Obj) -> None:
        super().__init__(daemon=True, name=f"pod-{pod['metadata']['name']}")
        self.host = host
        self.pod = pod
        md = pod["metadata"]
        self.uid, self.ns, self.name = md["uid"], md["namespace"], md["name"]
        self.dir = host.pods_dir / self.uid
        self.wake = threading.Event()
        self.gone = False
        spec = pod.get("spec") or {}
        self.host_network = bool(spec.get("hostNetwork"))
        self.netns = host.node_ns if self.host_network else host.pod_ns(self.uid)
        self.restart_policy = spec.get("restartPolicy") or "Always"
        self.init = [
            Container(c, CState(c["name"], c.get("image", "")), init=True) for c in spec.get("initContainers") or []
        ]
        self.main = [Container(c, CState(c["name"], c.get("image", ""))) for c in spec.get("containers") or []]
        self.pod_ips: list[str] = []
        self.start_time = ""
        self.ready_sandbox = False
        self.finished = False
        self.published: Obj = {}
        self.conditions: list[Obj] = []
        self.volumes: Volumes | None = None
        self.events_sent: set[tuple[str, str]] = set()

    # --- called by the runtime's watch thread
    def update(self, pod: Obj) -> None:
        self.pod = pod
        self.wake.set()

    def deleted(self) -> None:
        self.gone = True
        self.wake.set()

    # --- the loop
    def run(self) -> None:
        try:
            while not self.terminating():
                if not self.ready_sandbox:
                    self.setup()
                elif self.phase() not in ("Succeeded", "Failed"):
                    self.step()
                elif not self.finished:
                    self.finish()
                self.publish()
                self.wake.wait(0.5)
                self.wake.clear()
            self.terminate()
        except Exception as e:  # noqa: BLE001 - a broken pod must not take the node runtime down
            self.host.log(f"pod {self.ns}/{self.name}: worker failed: {e!r}")
            self.kill_all(0)
        finally:
            self.host.forget(self.uid)

    def terminating(self) -> bool:
        return self.gone or bool(self.pod["metadata"].get("deletionTimestamp"))

    def event(self, reason: str, message: str, kind: str = "Normal", once: bool = False) -> None:
        if once:
            if (reason, message) in self.events_sent:
                return
            self.events_sent.add((reason, message))
        self.host.event(self.pod, reason, message, kind)

    # --- sandbox and volumes
    def setup(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "tmp").mkdir(exist_ok=True)
            (self.dir / "tmp").chmod(0o1777)
            if self.host_network:
                self.pod_ips = list(self.host.node_ips)
            else:
                self.pod_ips = self.host.allocate_ips(self.uid)
            self.start_time = self.start_time or now_rfc3339()
            status = self.pod.setdefault("status", {})
            status.update(self.ip_status())
            resolv = podspec.resolv_conf(self.pod, self.host.node_resolv, self.host.dns_service_ip, "cluster.local")
            (self.dir / "resolv.conf").write_text(resolv)
            (self.dir / "hosts").write_text(podspec.hosts_file(self.pod, self.pod_ips, "cluster.local"))
            if not self.host_network:
                sandbox.create(self.netns, self.uid, self.pod_ips, list(self.host.pod_cidrs), resolv)
            self.volumes = Volumes(
                self.pod,
                self.dir / "volumes",
                self.host.lookup(self.ns),
                self.token_request,
                self.host.created_paths,
            )
            self.volumes.materialize()
            self.ready_sandbox = True
            self.save_record()
        except ConfigError as e:
            self.event("FailedMount", str(e), "Warning", once=True)
            for c in self.init + self.main:
                c.st.reason, c.st.message = "CreateContainerConfigError", str(e)
            self.wake.wait(5)

    def token_request(self, sa: str, audiences: list[str] | None, expiration: int) -> tuple[str, int]:
        return self.host.token(self.ns, self.name, self.uid, sa, audiences, expiration)

    def ip_status(self) -> Obj:
        return {
            "podIP": self.pod_ips[0] if self.pod_ips else None,
            "podIPs": [{"ip": a} for a in self.pod_ips],
            "hostIP": self.host.node_ips[0],
            "hostIPs": [{"ip": a} for a in self.host.node_ips],
        }

    # --- containers
    def plan(self, c: Container) -> tuple[list[str], Obj]:
        """The argv and shim plan of a container (raises ConfigError or returns an image error)."""
        res = images.resolve(c.spec.get("image", ""), c.spec.get("command"), c.spec.get("args"), self.host.knet_image)
        if res.error:
            raise ImageError(res.error)
        assert self.volumes is not None
        env = podspec.container_env(self.pod, c.spec, self.host.lookup(self.ns), self.base_env())
        argv = [podspec.expand(a, env) for a in res.argv]
        mounts = [
            *self.volumes.mounts(c.spec),
            (str(self.dir / "hosts"), "/etc/hosts", False),
            (str(self.dir / "resolv.conf"), "/etc/resolv.conf", False),
            (str(self.dir / "tmp"), "/tmp", False),
        ]
        hostname = self.host.node if self.host_network else podspec.hostname_of(self.pod)
        plan = {
            "netns": self.netns,
            "hostname": hostname,
            "mounts": mounts,
            "env": env,
            "workdir": c.spec.get("workingDir") or "/",
            "keep": KEEP,
        }
        return argv, plan

    def base_env(self) -> dict[str, str]:
        hostname = self.host.node if self.host_network else podspec.hostname_of(self.pod)
        api = self.host.kubernetes_service_ip
        return {
            "PATH": f"{Path(sys.executable).parent}:{podspec.DEFAULT_PATH}",
            "HOME": "/root",
            "HOSTNAME": hostname,
            "PYTHONUNBUFFERED": "1",
            "KUBERNETES_SERVICE_HOST": api,
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
            "KUBERNETES_PORT": f"tcp://{api}:443",
            "KUBERNETES_PORT_443_TCP": f"tcp://{api}:443",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_PORT": "443",
            "KUBERNETES_PORT_443_TCP_ADDR": api,
        }

    def start_container(self, c: Container) -> None:
        try:
            argv, plan = self.plan(c)
        except ImageError as e:
            c.st.state, c.st.reason, c.st.message = "waiting", "ErrImagePull", str(e)
            self.event("Failed", f'Failed to pull image "{c.spec.get("image")}": {e}', "Warning", once=True)
            c.next_start = time.monotonic() + 10
            return
        except ConfigError as e:
            c.st.state, c.st.reason, c.st.message = "waiting", "CreateContainerConfigError", str(e)
            self.event("Failed", f"Error: {e}", "Warning", once=True)
            c.next_start = time.monotonic() + 5
            return
        log = open(self.dir / f"{c.name}.log", "ab")  # noqa: SIM115 - handed to the child
        c.proc = subprocess.Popen(
            shim_argv(argv),
            env={"KNET_SHIM": json.dumps(plan)},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        now = time.monotonic()
        c.st.state, c.st.reason, c.st.message = "running", "", ""
        c.st.started_at, c.st.container_id = (
            now_rfc3339(),
            f"knet://{self.uid[:8]}-{c.name}-{c.st.restart_count}",
        )
        c.st.ready = False
        c.probes = {
            k: ProbeState(c.spec[f"{k}Probe"], now)
            for k in ("startup", "liveness", "readiness")
            if c.spec.get(f"{k}Probe")
        }
        c.st.started = "startup" not in c.probes
        c.plan = plan
        self.save_record()
        self.event("Started", f"Started container {c.name}")

    def reap(self, c: Container) -> bool:
        """Notice a container's exit; True if it exited now."""
        if c.proc is None or (code := c.proc.poll()) is None:
            return False
        c.proc = None
        exit_code = code if code >= 0 else 128 - code
        reason = "Completed" if exit_code == 0 else "Error"
        message = ""
        if exit_code == 128 and (line := self.last_log_line(c)).startswith("knet-shim:"):
            reason, message = "StartError", line
        c.st.state, c.st.reason, c.st.message, c.st.exit_code = "terminated", reason, message, exit_code
        c.st.finished_at, c.st.ready = now_rfc3339(), False
        return True

    def should_restart(self, c: Container) -> bool:
        if c.init:
            return c.st.exit_code != 0 and self.restart_policy != "Never"
        return self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and c.st.exit_code != 0)

    def schedule_restart(self, c: Container) -> None:
        c.st.last_state = {"terminated": c.st.api()["state"]["terminated"]}
        c.st.restart_count += 1
        c.next_start = time.monotonic() + c.backoff
        c.backoff = min(c.backoff * 2, BACKOFF_MAX)
        c.st.state, c.st.reason = "waiting", "CrashLoopBackOff"
        c.st.message = f"back-off {c.backoff / 2:.0f}s restarting failed container={c.name} pod={self.name}"
        self.event("BackOff", "Back-off restarting failed container " + c.name, "Warning")

    def step(self) -> None:
        now = time.monotonic()
        pending_init = next((c for c in self.init if not c.done), None)
        group = [pending_init] if pending_init else self.main
        for c in group:
            if self.reap(c):
                if c.init and c.st.exit_code == 0:
                    c.done = True
                    continue
                if self.should_restart(c):
                    self.schedule_restart(c)
                continue
            if c.proc is None and c.st.state != "terminated" and now >= c.next_start:
                self.start_container(c)
            elif c.proc is not None:
                self.probe(c, now)
                if now - c.next_start > 600:
                    c.backoff = BACKOFF_START  # ran long enough: forget earlier crashes
        if pending_init and pending_init.done:
            self.wake.set()

    def probe(self, c: Container, now: float) -> None:
        ip = self.pod_ips[0] if self.pod_ips else "127.0.0.1"
        for kind, ps in c.probes.items():
            if kind != "startup" and not c.st.started:
                continue
            if kind == "startup" and c.st.started:
                continue
            if not ps.due(now):
                continue
            ok, msg = check(ps.probe, ip, c.spec, lambda cmd, t, c=c: self.exec_in(c, cmd, t))
            ps.record(ok, now)
            if not ok:
                self.event("Unhealthy", f"{kind.capitalize()} probe failed: {msg}", "Warning")
            if kind == "startup":
                c.st.started = ps.ok
                if ps.failed:
                    self.kill_container(c, f"Container {c.name} failed startup probe, will be restarted")
            elif kind == "liveness" and ps.failed:
                self.kill_container(c, f"Container {c.name} failed liveness probe, will be restarted")
            elif kind == "readiness":
                c.st.ready = ps.ok
        if "readiness" not in c.probes:
            c.st.ready = c.st.started

    def exec_in(self, c: Container, cmd: list[str], timeout: float) -> int | None:
        try:
            return subprocess.run(
                shim_argv(cmd), env={"KNET_SHIM": json.dumps(c.plan)}, capture_output=True, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            return None

    def kill_container(self, c: Container, message: str, grace: float = 30) -> None:
        self.event("Killing", message)
        self.send_signal(c, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while c.proc and c.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        self.send_signal(c, signal.SIGKILL)

    def send_signal(self, c: Container, sig: int) -> None:
        if c.proc and c.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.proc.pid, sig)

    def kill_all(self, grace: float) -> None:
        running = [c for c in self.init + self.main if c.proc and c.proc.poll() is None]
        for c in running:
            self.event("Killing", f"Stopping container {c.name}")
            self.send_signal(c, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(c.proc and c.proc.poll() is None for c in running) and time.monotonic() < deadline:
            time.sleep(0.1)
        for c in running:
            self.send_signal(c, signal.SIGKILL)
            if c.proc:
                c.proc.wait()
            self.reap(c)

    def finish(self) -> None:
        """A pod that has run to completion keeps its status but not its sandbox (as the kubelet)."""
        self.kill_all(0)
        if not self.host_network:
            sandbox.destroy(self.netns, self.uid)
        self.finished = True

    def terminate(self) -> None:
        md, spec = self.pod["metadata"], self.pod.get("spec") or {}
        grace = md.get("deletionGracePeriodSeconds")
        grace = spec.get("terminationGracePeriodSeconds", 30) if grace is None else grace
        self.kill_all(0 if self.gone else float(grace))
        self.teardown()
        if not self.gone:
            self.host.delete_pod(self.ns, self.name, self.uid)

    def teardown(self) -> None:
        if not self.host_network:
            sandbox.destroy(self.netns, self.uid)
            self.host.release_ips(self.uid)
        if self.volumes:
            self.volumes.remove()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- status
    def phase(self) -> str:
        init_done = all(c.done for c in self.init)
        return podspec.phase(self.restart_policy, [c.st for c in self.init], [c.st for c in self.main], init_done)

    def publish(self) -> None:
        if self.terminating():
            return
        if self.volumes:
            self.volumes.refresh()
        phase = self.phase()
        init_done = all(c.done for c in self.init)
        ready = init_done and phase == "Running" and all(c.st.ready for c in self.main)
        truth = {
            "PodReadyToStartContainers": self.ready_sandbox,
            "Initialized": init_done,
            "ContainersReady": ready,
            "Ready": ready and self.readiness_gates_ok(),
        }
        unready = [c.name for c in self.main if not c.st.ready]
        reasons = {
            "Initialized": "ContainersNotInitialized",
            "ContainersReady": "ContainersNotReady",
            "Ready": "ContainersNotReady" if unready else "ReadinessGatesNotReady",
        }
        stamp = now_rfc3339()
        self.conditions = podspec.conditions(self.conditions, stamp, truth, reasons)
        status: Obj = {
            "phase": phase,
            "conditions": self.conditions,
            "startTime": self.start_time or None,
            "containerStatuses": [c.st.api() for c in self.main],
            **({"initContainerStatuses": [c.st.api() for c in self.init]} if self.init else {}),
            **(self.ip_status() if self.pod_ips else {}),
        }
        if status != self.published and self.host.patch_status(self.ns, self.name, status):
            self.published = status

    def readiness_gates_ok(self) -> bool:
        gates = [g["conditionType"] for g in (self.pod.get("spec") or {}).get("readinessGates") or []]
        have = {c["type"]: c["status"] for c in (self.pod.get("status") or {}).get("conditions") or []}
        return all(have.get(g) == "True" for g in gates)

    # --- records for `knet devcluster exec/logs`
    def save_record(self) -> None:
        plans = {c.name: c.plan for c in self.main if c.plan}
        rec = {
            "namespace": self.ns,
            "name": self.name,
            "uid": self.uid,
            "node": self.host.node,
            "netns": self.netns,
            "containers": [c.name for c in self.main],
            "plans": plans,
        }
        (self.dir / "record.json").write_text(json.dumps(rec, indent=1))

    def last_log_line(self, c: Container) -> str:
        try:
            lines = (self.dir / f"{c.name}.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""


class ImageError(RuntimeError):
    """The image cannot be run on the devcluster (reported as ErrImagePull)."""
