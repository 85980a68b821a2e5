"""Strict mode: which conntrack entries a new NetworkPolicy model no longer allows, as `conntrack -D` argv.

The ruleset lets established and related packets pass before any policy is looked at, so a policy
change alone affects new connections only. In strict mode the agent lists the node's conntrack table
after each change and deletes the entries of flows the new model would not allow as new: the next
packet of such a flow is then `new` and meets the rules (a TCP peer gets no answer, the connection dies).

A flow is judged as the ruleset judges its first packet: the source is the original source (before
any SNAT, which happens after the filter hook), the destination is the reply's source (the real pod
after the proxy's DNAT), the port is the reply's source port. Only TCP, UDP and SCTP flows are judged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from operators.netpol.model import NodeModel, TargetPod

_PAIR = re.compile(r"(src|dst|sport|dport)=(\S+)")
PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP"}
FINISHED = {"TIME_WAIT", "CLOSE"}  # TCP entries of connections already closed: nothing left to cut


@dataclass(frozen=True, order=True)
class Flow:
    """One conntrack entry: its original tuple, and where its replies come from."""

    protocol: str  # TCP, UDP, SCTP
    src: str
    dst: str
    sport: int
    dport: int
    reply_src: str
    reply_sport: int

    def argv(self) -> list[str]:
        family = "ipv6" if ":" in self.src else "ipv4"
        return ["conntrack", "-D", "-f", family, "-p", self.protocol.lower(), "--orig-src", self.src,
                "--orig-dst", self.dst, "--orig-port-src", str(self.sport), "--orig-port-dst", str(self.dport)]


def parse_flows(text: str) -> list[Flow]:
    """Entries from `conntrack -L` output; lines of other protocols or without ports, and TCP connections
    already closed (the many probes' TIME_WAIT entries, which would only slow the pass down), are skipped."""
    out = []
    for line in text.splitlines():
        words = line.split()
        proto = PROTOCOLS.get(words[0]) if words else None
        pairs = _PAIR.findall(line)
        if proto is None or len(pairs) < 8 or (proto == "TCP" and len(words) > 3 and words[3] in FINISHED):
            continue
        orig, reply = dict(pairs[:4]), dict(pairs[4:8])
        try:
            out.append(Flow(proto, orig["src"], orig["dst"], int(orig["sport"]), int(orig["dport"]),
                            reply["src"], int(reply["sport"])))
        except (KeyError, ValueError):
            continue
    return out


def _allowed(pod: TargetPod | None, direction: str, peer: str, protocol: str, port: int) -> bool:
    chain = pod.chain(direction) if pod else None
    return chain is None or bool(chain.allowing(peer, protocol, port))


def disallowed(flows: Iterable[Flow], model: NodeModel, node_ips: Iterable[str] = ()) -> list[Flow]:
    """The flows touching this node's pods that `model` would not let start now (sorted)."""
    pods: Mapping[str, TargetPod] = {ip: p for p in model.pods for ip in p.ips}
    own = set(node_ips)
    out = set()
    for f in flows:
        src, dst, port = f.src, f.reply_src, f.reply_sport
        if src in own:  # the node itself may always reach its pods (not filtered by default)
            continue
        egress_ok = _allowed(pods.get(src), "egress", dst, f.protocol, port)
        ingress_ok = _allowed(pods.get(dst), "ingress", src, f.protocol, port)
        if not (egress_ok and ingress_ok):
            out.add(f)
    return sorted(out)
