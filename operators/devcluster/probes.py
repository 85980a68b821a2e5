"""Container probes (httpGet, tcpSocket, exec), run from the node's namespace as the kubelet does."""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
# exec_fn(command, timeout_seconds) -> exit code (None on timeout)
ExecFn = Callable[[list[str], float], int | None]


def resolve_port(port: int | str, container: Obj) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port name {port!r} not found among the container's ports")


def check(probe: Obj, pod_ip: str, container: Obj, exec_fn: ExecFn) -> tuple[bool, str]:
    """Run one probe: (success, message for the Unhealthy event when it fails)."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if h := probe.get("httpGet"):
            host = h.get("host") or pod_ip
            port = resolve_port(h["port"], container)
            if (h.get("scheme") or "HTTP").upper() == "HTTPS":
                ctx = ssl._create_unverified_context()  # the kubelet does not verify probe certificates
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                headers = {x["name"]: x["value"] for x in h.get("httpHeaders") or []}
                headers.setdefault("User-Agent", "kube-probe/knet")
                conn.request("GET", h.get("path") or "/", headers=headers)
                code = conn.getresponse().status
            finally:
                conn.close()
            return 200 <= code < 400, f"HTTP probe failed with statuscode: {code}"
        if t := probe.get("tcpSocket"):
            port = resolve_port(t["port"], container)
            with socket.create_connection((t.get("host") or pod_ip, port), timeout=timeout):
                return True, ""
        if e := probe.get("exec"):
            code = exec_fn(list(e.get("command") or []), timeout)
            if code is None:
                return False, f"command timed out after {timeout:.0f}s"
            return code == 0, f"exec probe exited with code {code}"
        if probe.get("grpc"):
            return False, "grpc probes are not supported by the devcluster"
    except (OSError, ValueError, http.client.HTTPException) as err:
        return False, f"probe failed: {err}"
    return False, "probe has no handler"


@dataclass
class ProbeState:
    """Thresholds and timing of one probe of one container."""

    probe: Obj
    started: float
    next_at: float = 0.0
    successes: int = 0
    failures: int = 0
    ok: bool = False

    def __post_init__(self) -> None:
        self.next_at = self.started + float(self.probe.get("initialDelaySeconds") or 0)

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, success: bool, now: float) -> None:
        """Count one result against the probe's success and failure thresholds."""
        self.next_at = now + float(self.probe.get("periodSeconds") or 10)
        if success:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= int(self.probe.get("successThreshold") or 1):
                self.ok = True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failed:
                self.ok = False

    @property
    def failed(self) -> bool:
        return self.failures >= int(self.probe.get("failureThreshold") or 3)
