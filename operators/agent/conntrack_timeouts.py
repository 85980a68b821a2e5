"""The node's TCP conntrack timeouts, set as kube-proxy sets them (its `conntrack` settings).

kube-proxy raises `nf_conntrack_tcp_timeout_established` to 24 h and `..._close_wait` to 1 h by default,
so that an idle long-lived connection through a Service, or one half-closed by its server, keeps its
DNAT entry: with the kernel's own 60 s for CLOSE_WAIT the entry goes while the client still sends, and
its next packets reach no endpoint. Both settings are per network namespace: an agent on the host
network sets its node's alone. 0 leaves a setting as it is, as in kube-proxy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

ESTABLISHED = "net/netfilter/nf_conntrack_tcp_timeout_established"
CLOSE_WAIT = "net/netfilter/nf_conntrack_tcp_timeout_close_wait"
DEFAULTS = {ESTABLISHED: 86400, CLOSE_WAIT: 3600}  # kube-proxy's tcpEstablishedTimeout 24h, tcpCloseWaitTimeout 1h


def changes(wanted: Mapping[str, int], current: Mapping[str, int | None]) -> dict[str, int]:
    """The settings to write: those asked for (non-zero) whose current value differs."""
    return {name: value for name, value in wanted.items() if value > 0 and current.get(name) != value}


def _read(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def apply(wanted: Mapping[str, int], proc_sys: Path = Path("/proc/sys")) -> list[str]:
    """Write what `changes` says; the errors met (each logged), e.g. where conntrack is not loaded."""
    current = {name: _read(proc_sys / name) for name in wanted}
    errors = []
    for name, value in changes(wanted, current).items():
        try:
            (proc_sys / name).write_text(str(value))
            log.info("set %s to %d (was %s)", name.replace("/", "."), value, current[name])
        except OSError as e:
            errors.append(f"cannot set {name.replace('/', '.')} to {value}: {e.strerror or e}")
            log.warning("%s", errors[-1])
    return errors
