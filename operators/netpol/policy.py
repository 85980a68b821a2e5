"""NetworkPolicy (networking.k8s.io/v1) parsed into frozen views, validating as the API server would.

Invalid parts fail closed: a bad peer or port entry is dropped (it allows nothing) while the policy
still isolates the pods it selects; only a policy whose own podSelector is unusable is skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from operators.kube.parse import (
    PROTOCOLS,
    Network,
    Problem,
    Reader,
    is_dns_label,
    is_dns_subdomain,
    is_port,
    parse_cidr,
)
from operators.kube.selectors import Selector, parse_selector

INGRESS, EGRESS = "ingress", "egress"
_IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9]|-(?!-))*")


def short_hash(*parts: str) -> str:
    """A 12-hex-digit name fragment: user strings never reach the ruleset, only their hashes."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def valid_port_name(s: object) -> bool:
    """IANA_SVC_NAME: up to 15 lowercase alphanumerics or single hyphens, with at least one letter."""
    return (
        isinstance(s, str)
        and 0 < len(s) <= 15
        and bool(_IANA_SVC_NAME.fullmatch(s))
        and not s.endswith("-")
        and any(c.isalpha() for c in s)
    )


@dataclass(frozen=True)
class PolicyRef:
    """Who a rule came from; `label` is safe to print into a ruleset comment (validated, or a hash)."""

    namespace: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def id(self) -> str:
        return short_hash("policy", self.namespace, self.name)

    @property
    def safe(self) -> bool:
        return is_dns_label(self.namespace) and is_dns_subdomain(self.name)

    @property
    def label(self) -> str:
        return self.key if self.safe else f"policy-{self.id}"


@dataclass(frozen=True)
class IPBlock:
    cidr: Network
    excepts: tuple[Network, ...]


@dataclass(frozen=True)
class Peer:
    """Either an ipBlock, or selectors (a None namespace_selector means the policy's own namespace)."""

    ip_block: IPBlock | None = None
    pod_selector: Selector | None = None
    namespace_selector: Selector | None = None


@dataclass(frozen=True)
class PolicyPort:
    """`port` is a number, a port name, or None (all ports of the protocol); `end_port` ends a range."""

    protocol: str
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True)
class Rule:
    """One ingress or egress rule. `peers`/`ports` None means all; an empty tuple means none."""

    peers: tuple[Peer, ...] | None
    ports: tuple[PolicyPort, ...] | None


@dataclass(frozen=True)
class Policy:
    ref: PolicyRef
    pod_selector: Selector
    ingress: tuple[Rule, ...] | None  # None: the policy does not isolate ingress
    egress: tuple[Rule, ...] | None

    def rules(self, direction: str) -> tuple[Rule, ...] | None:
        return self.ingress if direction == INGRESS else self.egress


def parse_network(s: Any) -> Network | None:
    """A CIDR as the API accepts it: with a prefix length (a bare address is not one)."""
    return parse_cidr(s) if isinstance(s, str) and "/" in s else None


def _ip_block(obj: Any, where: str, r: Reader) -> IPBlock | None:
    if not isinstance(obj, dict):
        r.problem(f"{where}: not an object")
        return None
    cidr = parse_network(obj.get("cidr"))
    if cidr is None:
        r.problem(f"{where}.cidr: invalid CIDR {obj.get('cidr')!r}")
        return None
    excepts: list[Network] = []
    for i, e in enumerate(obj.get("except") or []):
        net = parse_network(e)
        if net is None or net.version != cidr.version or not net.subnet_of(cidr):  # type: ignore[arg-type]
            r.problem(f"{where}.except[{i}]: {e!r} is not a CIDR inside {cidr}")
            return None
        excepts.append(net)
    return IPBlock(cidr, tuple(sorted(set(excepts), key=lambda n: (n.network_address, n.prefixlen))))


def _peer(obj: Any, where: str, r: Reader) -> Peer | None:
    if not isinstance(obj, dict):
        r.problem(f"{where}: not an object")
        return None
    has_block = obj.get("ipBlock") is not None
    has_sel = obj.get("podSelector") is not None or obj.get("namespaceSelector") is not None
    if has_block == has_sel:
        r.problem(f"{where}: must set exactly one of ipBlock or podSelector/namespaceSelector")
        return None
    if has_block:
        block = _ip_block(obj["ipBlock"], f"{where}.ipBlock", r)
        return Peer(ip_block=block) if block else None
    sels: dict[str, Selector | None] = {}
    for field in ("podSelector", "namespaceSelector"):
        if obj.get(field) is None:
            sels[field] = None
            continue
        sel = parse_selector(obj[field], r, f"{where}.{field}")
        if sel is None:
            return None
        sels[field] = sel
    return Peer(pod_selector=sels["podSelector"], namespace_selector=sels["namespaceSelector"])


def _port(obj: Any, where: str, r: Reader) -> PolicyPort | None:
    if not isinstance(obj, dict):
        r.problem(f"{where}: not an object")
        return None
    proto, port, end = obj.get("protocol") or "TCP", obj.get("port"), obj.get("endPort")
    if proto not in PROTOCOLS:
        r.problem(f"{where}.protocol: unsupported protocol {proto!r}")
        return None
    if not (port is None or is_port(port) or valid_port_name(port)):
        r.problem(f"{where}.port: invalid port {port!r}")
        return None
    if end is not None:
        if not isinstance(port, int):
            r.problem(f"{where}.endPort: needs a numeric port")
            return None
        if isinstance(end, bool) or not isinstance(end, int) or not port <= end < 65536:
            r.problem(f"{where}.endPort: invalid end {end!r} for port {port}")
            return None
    return PolicyPort(proto, port, end)


def _items(obj: Any, where: str, r: Reader) -> list[Any] | None:
    """A list field: None when absent or empty (both mean "all"), [] after a type error (none)."""
    if obj is None or obj == []:
        return None
    if not isinstance(obj, list):
        r.problem(f"{where}: not a list")
        return []
    return obj


def _rule(obj: Any, peers_field: str, where: str, r: Reader) -> Rule:
    if not isinstance(obj, dict):
        r.problem(f"{where}: not an object; the rule allows nothing")
        return Rule((), ())
    raw_peers = _items(obj.get(peers_field), f"{where}.{peers_field}", r)
    raw_ports = _items(obj.get("ports"), f"{where}.ports", r)
    peers = (
        None
        if raw_peers is None
        else tuple(
            p for i, e in enumerate(raw_peers) if (p := _peer(e, f"{where}.{peers_field}[{i}]", r))
        )
    )
    ports = (
        None
        if raw_ports is None
        else tuple(p for i, e in enumerate(raw_ports) if (p := _port(e, f"{where}.ports[{i}]", r)))
    )
    return Rule(peers, ports)


def _policy_types(spec: dict[str, Any], where: str, r: Reader) -> tuple[bool, bool]:
    """(isolates ingress, isolates egress): as given, else inferred as the API server defaults them."""
    types = spec.get("policyTypes")
    if isinstance(types, list) and types:
        bad = [t for t in types if t not in ("Ingress", "Egress")]
        if not bad:
            return "Ingress" in types, "Egress" in types
        r.problem(f"{where}.policyTypes: invalid {bad!r}; inferred from the rules")
    elif types:
        r.problem(f"{where}.policyTypes: not a list; inferred from the rules")
    return True, bool(spec.get("egress"))


def parse_policy(obj: dict[str, Any]) -> tuple[Policy | None, list[Problem]]:
    """A Policy view, or None when its podSelector is unusable; problems name the policy."""
    md = obj.get("metadata") or {}
    ref = PolicyRef(str(md.get("namespace") or "default"), str(md.get("name") or ""))
    r = Reader("NetworkPolicy", ref.name, ref.namespace)
    if not ref.safe:
        r.problem(f"invalid namespace or name; the ruleset calls it {ref.label}")
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    selector = parse_selector(spec.get("podSelector") or {}, r, "spec.podSelector")
    if selector is None:
        r.problem("policy skipped: its podSelector is invalid")
        return None, r.problems
    ingress, egress = _policy_types(spec, "spec", r)
    rules: dict[str, tuple[Rule, ...] | None] = {}
    for direction, isolates, peers_field in ((INGRESS, ingress, "from"), (EGRESS, egress, "to")):
        raw = spec.get(direction)
        if not isolates:
            rules[direction] = None
            continue
        if raw is not None and not isinstance(raw, list):
            r.problem(f"spec.{direction}: not a list; no {direction} is allowed")
            raw = []
        rules[direction] = tuple(
            _rule(rule, peers_field, f"spec.{direction}[{i}]", r) for i, rule in enumerate(raw or [])
        )
    return Policy(ref, selector, rules[INGRESS], rules[EGRESS]), r.problems
