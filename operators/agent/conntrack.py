"""Which UDP conntrack entries go stale when a model replaces another, as pure data for `conntrack -D`.

NAT is decided on a flow's first packet only, and a UDP "flow" lives as long as packets keep coming.
So, as kube-proxy does:
- when an endpoint stops being used by a frontend, the entries that frontend DNATed to it are deleted
  (`--orig-dst FRONTEND --reply-src ENDPOINT`); otherwise a client that keeps sending keeps talking
  to a gone pod;
- when a frontend that had no endpoint gets one, every entry to it is deleted: packets sent while it
  had none made entries without DNAT, which would otherwise keep the client from ever reaching it.

Frontends are the ClusterIP, externalIPs and LoadBalancer IPs at the Service port, and the node port
(on any local address, so without `--orig-dst`). TCP and SCTP need none of this: their entries end
with the connection. On the agent's first sync there is no old model: entries made before it are left
alone (they may be a previous agent's live flows, which a restart must not move).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from operators.proxy.model import ProxiedPort

# (family, frontend address or "" for a node port, port) -> endpoints as (ip, port)
Frontends = dict[tuple[int, str, int], frozenset[tuple[str, int]]]


@dataclass(frozen=True, order=True)
class Flush:
    """One `conntrack -D` filter over UDP entries."""

    family: int
    orig_dst: str  # "" for a node port: any destination
    port: int  # the frontend port the client sent to
    reply_src: str = ""  # the endpoint that went away; "" for every entry of the frontend
    reply_port: int = 0

    def argv(self) -> list[str]:
        argv = ["conntrack", "-D", "-f", f"ipv{self.family}", "-p", "udp"]
        if self.orig_dst:
            argv += ["--orig-dst", self.orig_dst]
        argv += ["--orig-port-dst", str(self.port)]
        if self.reply_src:
            argv += ["--reply-src", self.reply_src, "--reply-port-src", str(self.reply_port)]
        return argv


def udp_frontends(ports: Iterable[ProxiedPort]) -> Frontends:
    """Every UDP frontend of these ports with the endpoints it may DNAT to."""
    out: Frontends = {}
    for p in ports:
        if p.protocol != "udp":
            continue
        endpoints = frozenset((t.ip, t.port) for t in p.reachable_endpoints)
        for ip in (p.cluster_ip, *p.external_ips, *p.lb_ips):
            out[(p.family, ip, p.port)] = endpoints
        if p.node_port:
            out[(p.family, "", p.node_port)] = endpoints
    return out


def stale_flows(old: Iterable[ProxiedPort] | None, new: Iterable[ProxiedPort]) -> list[Flush]:
    """The deletions to run once the ports `new` are in the kernel in place of `old` (sorted, no
    duplicates). Every frontend belongs to one port, so the ports of the Services that changed give the
    deletions that all ports would."""
    if old is None:
        return []
    before, after = udp_frontends(old), udp_frontends(new)
    flushes: set[Flush] = set()
    for key, endpoints in after.items():
        if endpoints and not before.get(key):
            flushes.add(Flush(*key))
    for key, endpoints in before.items():
        for ip, port in endpoints - after.get(key, frozenset()):
            flushes.add(Flush(*key, reply_src=ip, reply_port=port))
    return sorted(flushes)
