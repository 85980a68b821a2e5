"""Running wrk and reading its summary: requests, failures (socket errors and non-2xx/3xx answers),
requests per second and the 99th percentile latency. Shared by the ingress benchmark and the e2e
rolling-update test."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    socket_errors: int
    non_2xx_3xx: int
    rps: float
    p99_seconds: float

    @property
    def failed(self) -> int:
        return self.socket_errors + self.non_2xx_3xx


def wrk_command(url: str, seconds: float, connections: int, host: str = "", threads: int = 1) -> list[str]:
    """wrk's argv with the latency distribution on (for p99) and a 5 s request timeout."""
    header = ["-H", f"Host: {host}"] if host else []
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "--latency",
            *header, url]


def parse_wrk(text: str) -> WrkResult:
    """The figures of one wrk run; ValueError when the summary is missing (wrk did not run)."""
    m = re.search(r"^\s*(\d+) requests in", text, re.M)
    if not m:
        raise ValueError(f"no wrk summary in {text!r}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+([0-9.]+)(us|ms|s|m)\s*$", text, re.M)
    return WrkResult(requests=int(m.group(1)),
                     socket_errors=sum(map(int, errors.groups())) if errors else 0,
                     non_2xx_3xx=int(non.group(1)) if non else 0,
                     rps=float(rps.group(1)) if rps else 0.0,
                     p99_seconds=float(p99.group(1)) * _UNITS[p99.group(2)] if p99 else 0.0)
