"""The compiled, frozen NetworkPolicy model: per pod and direction, the rules that may allow traffic.

Both the nftables renderer and `explain` read this one model, so what explain says is what the
ruleset does. Every selector and named port is already resolved to addresses and port numbers here.
"""

from __future__ import annotations

import bisect
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from operators.kube.parse import Problem
from operators.netpol.policy import INGRESS, PolicyRef, short_hash

ALL_PORTS = (0, 65535)


Span = tuple[int, int]  # first and last address of an interval, as integers


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Intervals (of addresses or ports) sorted, with overlapping and adjacent ones joined."""
    merged: list[list[int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return tuple((first, last) for first, last in merged)


def ip_number(ip: str) -> tuple[int, int]:
    """(IP version, address as an integer) of an address string, without an `ipaddress` object: the
    compiler meets every pod address of the cluster, and parsing is most of a cold compile."""
    if ":" in ip:
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, ip), "big")
    return 4, int.from_bytes(socket.inet_aton(ip), "big")


@dataclass(frozen=True)
class AddressSet:
    """Addresses as sorted, disjoint, non-adjacent integer intervals per family (an nft interval set's
    elements): merging integers is far cheaper than collapsing network objects, and rendering needs no more."""

    v4: tuple[Span, ...] = ()
    v6: tuple[Span, ...] = ()

    @classmethod
    def of_spans(cls, spans: dict[int, list[Span]]) -> AddressSet:
        """From (first, last) address integers per IP version, in any order, overlapping or not."""
        return cls(merge_spans(spans.get(4, ())), merge_spans(spans.get(6, ())))

    def family(self, version: int) -> tuple[Span, ...]:
        return self.v4 if version == 4 else self.v6

    def __contains__(self, ip: object) -> bool:
        version, number = ip_number(str(ip))
        spans = self.family(version)
        i = bisect.bisect_right(spans, (number, 1 << 128)) - 1
        return i >= 0 and spans[i][0] <= number <= spans[i][1]

    def __bool__(self) -> bool:
        return bool(self.v4 or self.v6)


@dataclass(frozen=True)
class PortRange:
    """Destination ports `first`..`last` of one protocol; ALL_PORTS means the protocol as a whole."""

    protocol: str
    first: int
    last: int

    @property
    def every_port(self) -> bool:
        return (self.first, self.last) == ALL_PORTS

    def matches(self, protocol: str, port: int) -> bool:
        return protocol == self.protocol and self.first <= port <= self.last


@dataclass(frozen=True)
class NamedTarget:
    """An egress named port resolved on a peer pod: that pod's address, protocol and port number."""

    ip: str
    protocol: str
    port: int


@dataclass(frozen=True)
class CompiledRule:
    """Rule `index` of `policy` in `direction`, resolved for one target pod.

    `peers` None means every address; `ports` None means all traffic (any protocol, any port).
    """

    policy: PolicyRef
    direction: str
    index: int
    peers: AddressSet | None
    ports: tuple[PortRange, ...] | None
    named: tuple[NamedTarget, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.direction}[{self.index}]"

    @property
    def peer_set(self) -> str:
        """Name of the rule's address set (by identity, so it stays stable while its members change)."""
        return "peer-" + short_hash(self.policy.key, self.direction, str(self.index))

    @property
    def named_set(self) -> str:
        return "named-" + short_hash(self.policy.key, self.direction, str(self.index))

    def allows(self, peer_ip: str, protocol: str, port: int) -> bool:
        """Does the rule allow traffic with this peer address (source for ingress, destination for egress)?"""
        if NamedTarget(peer_ip, protocol, port) in self.named:
            return True
        if self.peers is not None and peer_ip not in self.peers:
            return False
        return self.ports is None or any(r.matches(protocol, port) for r in self.ports)


@dataclass(frozen=True)
class PodChain:
    """The rules guarding one or more pods in one direction; the pods are isolated by `policies`."""

    direction: str
    policies: tuple[PolicyRef, ...]
    rules: tuple[CompiledRule, ...]

    @cached_property
    def name(self) -> str:
        """Content-named, so pods with the same policies and resolved ports share a chain."""
        parts = [self.direction, *(p.key for p in self.policies)]
        for r in self.rules:
            parts += [r.policy.key, str(r.index), repr(r.ports), str(r.peers is None), repr(r.named_set)]
        return ("in-" if self.direction == INGRESS else "eg-") + short_hash(*parts)

    def allowing(self, peer_ip: str, protocol: str, port: int) -> tuple[CompiledRule, ...]:
        return tuple(r for r in self.rules if r.allows(peer_ip, protocol, port))


@dataclass(frozen=True)
class TargetPod:
    """A pod with its own addresses and, per direction, the chain isolating it (None: unrestricted)."""

    key: str
    ips: tuple[str, ...]
    ingress: PodChain | None
    egress: PodChain | None

    def chain(self, direction: str) -> PodChain | None:
        return self.ingress if direction == INGRESS else self.egress


@dataclass(frozen=True)
class NodeModel:
    """Everything one node must program for its own pods, plus the problems met on the way."""

    node: str
    pods: tuple[TargetPod, ...]
    problems: tuple[Problem, ...] = ()

    @property
    def chains(self) -> tuple[PodChain, ...]:
        found = {c.name: c for p in self.pods for c in (p.ingress, p.egress) if c}
        return tuple(found[n] for n in sorted(found))

    @property
    def policies(self) -> tuple[PolicyRef, ...]:
        """The policies that isolate at least one of the node's pods."""
        refs = {r for c in self.chains for r in c.policies}
        return tuple(sorted(refs, key=lambda r: r.key))
