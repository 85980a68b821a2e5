"""`explain`: would this connection be allowed, and by which policies and rules?

It evaluates the same compiled model the nftables renderer draws from: egress on the source side,
ingress on the destination side, each on real pod addresses (as the ruleset sees them after DNAT).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from operators.kube.parse import Problem
from operators.kube.pods import PROTOCOLS, Namespace, Pod
from operators.netpol.compiler import Compiler
from operators.netpol.inputs import parse_objects
from operators.netpol.policy import EGRESS, INGRESS, Policy


@dataclass(frozen=True)
class Side:
    """One direction's answer: egress for the source, ingress for the destination."""

    direction: str
    endpoint: str  # "ns/pod", "ns/pod (hostNetwork)", or an address that is no pod's own
    subject: bool  # a pod on the pod network, to which NetworkPolicy applies
    policies: tuple[str, ...]  # the policies isolating the endpoint in this direction
    allowed_by: tuple[tuple[str, int], ...]  # (policy, rule index) of every rule that allows

    @property
    def isolated(self) -> bool:
        return bool(self.policies)

    @property
    def allowed(self) -> bool:
        return not self.isolated or bool(self.allowed_by)


@dataclass(frozen=True)
class Verdict:
    src: str
    dst: str
    src_ip: str
    dst_ip: str
    port: int
    protocol: str
    egress: Side
    ingress: Side
    problems: tuple[Problem, ...]

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed


@dataclass(frozen=True)
class _Endpoint:
    pod: Pod | None  # set only for pods that NetworkPolicy applies to
    label: str
    ips: tuple[str, ...]


def _endpoint(pods: Sequence[Pod], ref: str) -> _Endpoint:
    """A pod by `ns/name`, or by an address of its own; else the bare address (a non-pod peer)."""
    try:
        ip = str(ipaddress.ip_address(ref))
    except ValueError:
        pod = next((p for p in pods if p.key == ref), None)
        if pod is None:
            raise ValueError(f"no pod {ref!r} among the objects (give ns/name or an IP address)") from None
        if not pod.ips:
            raise ValueError(f"pod {ref} has no address yet") from None
        if pod.has_pod_network:
            return _Endpoint(pod, pod.key, pod.ips)
        return _Endpoint(None, f"{pod.key} ({'hostNetwork' if pod.host_network else pod.phase})", pod.ips)
    pod = next((p for p in pods if p.has_pod_network and ip in p.ips), None)
    return _Endpoint(pod, pod.key if pod else ip, (ip,))


def _side(compiler: Compiler, direction: str, end: _Endpoint, peer_ip: str, proto: str, port: int) -> Side:
    chain = compiler.chain(end.pod, direction) if end.pod else None
    if chain is None:
        return Side(direction, end.label, end.pod is not None, (), ())
    rules = tuple((r.policy.key, r.index) for r in chain.allowing(peer_ip, proto, port))
    return Side(direction, end.label, True, tuple(p.key for p in chain.policies), rules)


def explain_views(
    policies: Iterable[Policy],
    pods: Iterable[Pod],
    namespaces: Iterable[Namespace],
    src: str,
    dst: str,
    port: int = 80,
    protocol: str = "TCP",
    problems: Iterable[Problem] = (),
) -> Verdict:
    """`explain` over parsed views (as the agent keeps them in its indexes)."""
    protocol = protocol.upper()
    if protocol not in PROTOCOLS or not 0 < port < 65536:
        raise ValueError(f"invalid port {port}/{protocol}")
    pods = list(pods)
    s, d = _endpoint(pods, src), _endpoint(pods, dst)
    pairs = [
        (a, b)
        for b in d.ips
        for a in s.ips
        if ipaddress.ip_address(a).version == ipaddress.ip_address(b).version
    ]
    if not pairs:
        raise ValueError(f"{src} and {dst} share no address family")
    src_ip, dst_ip = pairs[0]
    compiler = Compiler().load(policies, pods, namespaces)
    egress = _side(compiler, EGRESS, s, dst_ip, protocol, port)
    ingress = _side(compiler, INGRESS, d, src_ip, protocol, port)
    found = (*problems, *sorted(compiler.problems, key=str))
    return Verdict(src, dst, src_ip, dst_ip, port, protocol, egress, ingress, found)


def explain(
    objects: Iterable[dict[str, Any]], src: str, dst: str, port: int = 80, protocol: str = "TCP"
) -> Verdict:
    """Is a new connection src -> dst:port/protocol allowed? src and dst are `ns/pod` or IP addresses.

    Raises ValueError for arguments that name nothing; problems in the objects are reported instead.
    """
    inputs = parse_objects(objects)
    return explain_views(
        inputs.policies, inputs.pods, inputs.namespaces, src, dst, port, protocol, inputs.problems
    )
