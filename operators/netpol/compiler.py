"""Policies + Pods + Namespaces -> the frozen per-pod model, following networking.k8s.io/v1 semantics.

- A pod is isolated in a direction when some policy in its namespace selects it with that policy
  type; traffic is then allowed only if some rule of those policies allows it (rules add up).
- Peers in one rule are ORed; podSelector and namespaceSelector in one peer are ANDed; a peer
  without namespaceSelector means the policy's own namespace.
- Named ports resolve against the pod they name a port of: the destination pod itself for ingress,
  the peer pod for egress.
- Only pods with their own network (not hostNetwork, not finished, with addresses) are selected
  as targets or peers; hostNetwork pods are node traffic, to be matched with ipBlock.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from operators.kube.pods import Namespace, Pod, namespace
from operators.netpol.model import (
    ALL_PORTS,
    AddressSet,
    CompiledRule,
    NamedTarget,
    NodeModel,
    PodChain,
    PortRange,
    TargetPod,
)
from operators.netpol.policy import (
    EGRESS,
    INGRESS,
    IPBlock,
    Network,
    Peer,
    Policy,
    PolicyPort,
    PolicyRef,
    Rule,
)


def block_networks(block: IPBlock) -> list[Network]:
    """The CIDR minus its exceptions, as disjoint networks."""
    nets: list[Network] = [block.cidr]
    for ex in block.excepts:
        rest: list[Network] = []
        for n in nets:
            if not n.overlaps(ex):
                rest.append(n)
            elif not n.subnet_of(ex):  # type: ignore[arg-type]
                rest.extend(n.address_exclude(ex))  # type: ignore[arg-type]
        nets = rest
    return nets


def merge_ranges(ranges: Iterable[PortRange]) -> tuple[PortRange, ...]:
    """Sorted, merged port ranges per protocol (so equal meaning gives equal text)."""
    by_proto: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in ranges:
        by_proto[r.protocol].append((r.first, r.last))
    out: list[PortRange] = []
    for proto in sorted(by_proto):
        merged: list[list[int]] = []
        for first, last in sorted(by_proto[proto]):
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        out += [PortRange(proto, a, b) for a, b in merged]
    return tuple(out)


@dataclass(frozen=True)
class _RuleKey:
    """Identifies a rule for caching; hashing a whole Policy per lookup would cost more than the work."""

    ref: PolicyRef
    direction: str
    index: int
    policy: Policy = field(compare=False)


class Compiler:
    """Resolves policies against one snapshot of pods and namespaces; caches per-rule work."""

    def __init__(self, policies: Iterable[Policy], pods: Iterable[Pod], namespaces: Iterable[Namespace]):
        self.policies = sorted(policies, key=lambda p: p.ref.key)
        self.pods = sorted((p for p in pods if p.has_pod_network), key=lambda p: p.key)
        self.namespaces: dict[str, Namespace] = {n.name: n for n in namespaces}
        for p in self.pods:  # a pod's namespace exists even when the snapshot lacks its object
            self.namespaces.setdefault(p.namespace, namespace(p.namespace))
        self.by_namespace: defaultdict[str, list[Pod]] = defaultdict(list)
        for p in self.pods:
            self.by_namespace[p.namespace].append(p)
        self.problems: dict[str, None] = {}
        self._peers: dict[_RuleKey, AddressSet | None] = {}
        self._named: dict[_RuleKey, tuple[NamedTarget, ...]] = {}
        self._hosts: dict[str, Network] = {}
        self._numeric: dict[_RuleKey, tuple[PortRange, ...]] = {}
        self._checked: set[_RuleKey] = set()
        self._chains: dict[tuple[str, tuple[PolicyRef, ...], tuple[tuple[int, ...], ...]], PodChain] = {}

    def selects(self, policy: Policy, pod: Pod) -> bool:
        return pod.namespace == policy.ref.namespace and policy.pod_selector.matches(pod.labels)

    def peer_pods(self, policy: Policy, peer: Peer) -> list[Pod]:
        if peer.namespace_selector is None:
            spaces = [policy.ref.namespace]
        else:
            ns_sel = peer.namespace_selector
            spaces = [n for n, ns in sorted(self.namespaces.items()) if ns_sel.matches(ns.labels)]
        sel = peer.pod_selector
        pods = [p for n in spaces for p in self.by_namespace.get(n, ())]
        return [p for p in pods if sel is None or sel.matches(p.labels)]

    def host_network(self, ip: str) -> Network:
        if ip not in self._hosts:
            self._hosts[ip] = ipaddress.ip_network(ip)
        return self._hosts[ip]

    def peers(self, key: _RuleKey, rule: Rule) -> AddressSet | None:
        """Every address the rule's peers cover (None: all addresses)."""
        if key not in self._peers:
            nets: list[Network] = []
            for peer in rule.peers or ():
                if peer.ip_block:
                    nets += block_networks(peer.ip_block)
                else:
                    pods = self.peer_pods(key.policy, peer)
                    nets += [self.host_network(ip) for p in pods for ip in p.ips]
            self._peers[key] = None if rule.peers is None else AddressSet.of(nets)
        return self._peers[key]

    def named_targets(self, key: _RuleKey, rule: Rule) -> tuple[NamedTarget, ...]:
        """Egress named ports, resolved on every pod at an address the rule's peers cover."""
        if key not in self._named:
            peers = self.peers(key, rule)
            out: set[NamedTarget] = set()
            for pp in _named(rule):
                found = {
                    NamedTarget(ip, pp.protocol, n)
                    for pod in self.pods
                    for n in pod.named_ports(str(pp.port), pp.protocol)
                    for ip in pod.ips
                    if peers is None or ip in peers
                }
                if not found:
                    self._problem(key, f"named port {pp.port!r}/{pp.protocol} is declared by no peer pod")
                out |= found
            self._named[key] = tuple(sorted(out, key=lambda t: (t.ip, t.protocol, t.port)))
        return self._named[key]

    def numeric_ports(self, key: _RuleKey, rule: Rule) -> tuple[PortRange, ...]:
        if key not in self._numeric:
            self._numeric[key] = merge_ranges(_numeric(rule))
        return self._numeric[key]

    def ingress_ports(self, key: _RuleKey, rule: Rule, pod: Pod) -> tuple[PortRange, ...] | None:
        """The rule's ports with named ports resolved on the destination pod itself."""
        if rule.ports is None:
            return None
        named = [
            PortRange(pp.protocol, n, n)
            for pp in _named(rule)
            for n in pod.named_ports(str(pp.port), pp.protocol)
        ]
        if key not in self._checked:
            self._checked.add(key)
            mates = [p for p in self.by_namespace.get(key.ref.namespace, []) if self.selects(key.policy, p)]
            for pp in _named(rule):
                if not any(p.named_ports(str(pp.port), pp.protocol) for p in mates):
                    self._problem(key, f"named port {pp.port!r}/{pp.protocol} is declared by no selected pod")
        numeric = self.numeric_ports(key, rule)
        return merge_ranges([*numeric, *named]) if named else numeric

    def compile_rule(self, key: _RuleKey, rule: Rule, pod: Pod) -> CompiledRule:
        peers = self.peers(key, rule)
        if key.direction == INGRESS:
            return CompiledRule(key.ref, INGRESS, key.index, peers, self.ingress_ports(key, rule, pod))
        ports = None if rule.ports is None else self.numeric_ports(key, rule)
        return CompiledRule(key.ref, EGRESS, key.index, peers, ports, self.named_targets(key, rule))

    def chain(self, pod: Pod, direction: str) -> PodChain | None:
        """The pod's chain in one direction, or None when no policy isolates it that way.

        Pods isolated by the same policies, with named ports resolving alike, share one chain object.
        """
        isolating = [p for p in self.policies if p.rules(direction) is not None and self.selects(p, pod)]
        if not isolating:
            return None
        resolved = ()
        if direction == INGRESS:
            named = [pp for p in isolating for rule in p.ingress or () for pp in _named(rule)]
            resolved = tuple(pod.named_ports(str(pp.port), pp.protocol) for pp in named)
        sig = (direction, tuple(p.ref for p in isolating), resolved)
        if sig not in self._chains:
            rules = tuple(
                self.compile_rule(_RuleKey(p.ref, direction, i, p), rule, pod)
                for p in isolating
                for i, rule in enumerate(p.rules(direction) or ())
            )
            self._chains[sig] = PodChain(direction, sig[1], rules)
        return self._chains[sig]

    def target(self, pod: Pod) -> TargetPod:
        return TargetPod(pod.key, pod.ips, self.chain(pod, INGRESS), self.chain(pod, EGRESS))

    def _problem(self, key: _RuleKey, message: str) -> None:
        self.problems[f"NetworkPolicy {key.ref.key}: spec.{key.direction}[{key.index}]: {message}"] = None


def _numeric(rule: Rule) -> list[PortRange]:
    out = []
    for pp in rule.ports or ():
        if pp.port is None:
            out.append(PortRange(pp.protocol, *ALL_PORTS))
        elif isinstance(pp.port, int):
            out.append(PortRange(pp.protocol, pp.port, pp.end_port or pp.port))
    return out


def _named(rule: Rule) -> list[PolicyPort]:
    return [pp for pp in rule.ports or () if isinstance(pp.port, str)]


def compile_node(
    policies: Iterable[Policy],
    pods: Iterable[Pod],
    namespaces: Iterable[Namespace],
    node: str,
    problems: Iterable[str] = (),
) -> NodeModel:
    """The model for one node's own pods; `problems` from parsing are carried along."""
    c = Compiler(policies, pods, namespaces)
    targets = tuple(c.target(p) for p in c.pods if p.node_name == node)
    return NodeModel(node, targets, tuple(dict.fromkeys([*problems, *sorted(c.problems)])))
