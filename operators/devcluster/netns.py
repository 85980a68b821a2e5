"""Network namespaces through iproute2 (the `ip` command) and util-linux (`nsenter`).

iproute2 rather than pyroute2 here: the devcluster is a test bench whose every step a
person should be able to replay by hand, and `ip` commands in logs show exactly that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

NETNS_DIR = Path("/run/netns")


class CommandError(RuntimeError):
    """A command failed; the message is its one-line cause."""


def run(*args: str, check: bool = True, input: str | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        raise CommandError(f"`{' '.join(args)}` failed: {err[-1] if err else f'exit {proc.returncode}'}")
    return proc.stdout


def ip(ns: str | None, *args: str, check: bool = True) -> str:
    """`ip` in a namespace (None: the caller's own)."""
    return run(*(["ip", "-n", ns] if ns else ["ip"]), *args, check=check)


def in_ns(ns: str, *args: str, check: bool = True) -> str:
    """Run a command with its network namespace set to `ns` (mounts untouched, unlike `ip netns exec`)."""
    return run("nsenter", f"--net={NETNS_DIR / ns}", "--", *args, check=check)


def exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def add(ns: str) -> None:
    if not exists(ns):
        run("ip", "netns", "add", ns)
    ip(ns, "link", "set", "lo", "up")


def sysctl(ns: str, **values: str) -> None:
    """Set per-namespace sysctls (`net.ipv4.ip_forward`, ... written with dots)."""
    for k, v in values.items():
        in_ns(ns, "sysctl", "-q", "-w", f"{k.replace('__', '.')}={v}")


def listing(prefix: str) -> list[str]:
    if not NETNS_DIR.exists():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def pids(ns: str) -> list[int]:
    out = run("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in out.split()]


def kill_all(ns: str, timeout: float = 5.0) -> None:
    """SIGTERM every process in the namespace, then SIGKILL what is left after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        procs = pids(ns)
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        deadline = time.monotonic() + timeout
        while procs and time.monotonic() < deadline:
            time.sleep(0.1)
            procs = pids(ns)
        if not procs:
            return


def delete(ns: str) -> None:
    if exists(ns):
        kill_all(ns)
        run("ip", "netns", "delete", ns, check=False)
