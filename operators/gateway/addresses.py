"""The nginx port behind each Gateway listener port, when every Gateway has an address of its own.

knet's nginx pods serve every Gateway, so a connection has to say which Gateway it came for. It does so by
the port it reaches nginx on: each (Gateway, listener port) pair gets an nginx port of its own from a range
the controller is given, and the Gateway's LoadBalancer Service (`services.py`) sends its listener port there.
Two Gateways with a listener on port 80 for the same hostname are then two nginx sockets, and a route attached
to one is never matched for a connection to the other.

A pair's port is a hash of the Gateway's namespace, name and listener port, probed upwards (wrapping) past
ports already given: the same Gateway keeps the same nginx port across syncs, restarts and replicas (every
replica computes the same), and another Gateway coming or going moves no one unless their hashes collide.
Gateways are taken oldest first, so on a collision the older Gateway keeps its port.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from operators.gateway.listeners import PROTOCOLS
from operators.gateway.views import Gateway

PortPlan = dict[tuple[str, int], int]  # (Gateway key, listener port) -> nginx port


def allocate(gateways: Iterable[Gateway], first: int, last: int, taken: Iterable[int] = ()) -> PortPlan:
    """An nginx port in [first, last] for each listener port (of a protocol knet serves) of each Gateway,
    never one of `taken` (the Ingress ports, the pod's other servers); a pair is left out when the range is
    full."""
    size = last - first + 1
    used = {p for p in taken if first <= p <= last}
    plan: PortPlan = {}
    for gw in sorted(gateways, key=lambda g: g.meta.age_key):
        for port in sorted({ls.port for ls in gw.listeners if ls.protocol in PROTOCOLS}):
            if len(used) >= size:
                return plan
            digest = hashlib.sha256(f"{gw.meta.namespace}/{gw.meta.name}:{port}".encode()).digest()
            slot = int.from_bytes(digest[:8], "big") % size
            while first + slot in used:
                slot = (slot + 1) % size
            used.add(first + slot)
            plan[(gw.meta.key, port)] = first + slot
    return plan


def parse_range(text: str) -> tuple[int, int]:
    """`FIRST-LAST` (both ports, FIRST <= LAST) -> (FIRST, LAST); ValueError otherwise."""
    first, sep, last = text.partition("-")
    if not sep or not first.isdigit() or not last.isdigit() or not 1 <= int(first) <= int(last) <= 65535:
        raise ValueError(f"port range {text!r} is not FIRST-LAST with 1 <= FIRST <= LAST <= 65535")
    return int(first), int(last)
