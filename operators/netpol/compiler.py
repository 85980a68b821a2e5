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

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from operators.kube.parse import Problem
from operators.kube.pods import Namespace, Pod, namespace
from operators.kube.selectors import Labels, Selector
from operators.netpol.model import (
    ALL_PORTS,
    AddressSet,
    CompiledRule,
    NamedTarget,
    NodeModel,
    PodChain,
    PortRange,
    TargetPod,
    ip_number,
    merge_spans,
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
    return tuple(PortRange(proto, a, b) for proto in sorted(by_proto) for a, b in merge_spans(by_proto[proto]))


@dataclass(frozen=True)
class _RuleKey:
    """Identifies a rule for caching; hashing a whole Policy per lookup would cost more than the work."""

    ref: PolicyRef
    direction: str
    index: int
    policy: Policy = field(compare=False)


PeerSig = tuple[str, tuple[Peer, ...]]  # (the policy's namespace where a peer needs it, else "", peers)
REBUILD_AFTER = 500  # changed pods in one snapshot beyond which the kept peer sets are resolved afresh


def _numbers(pod: Pod) -> tuple[tuple[int, int], ...]:
    return tuple(ip_number(ip) for ip in pod.ips)


@dataclass
class _PeerSet:
    """One distinct peer list's addresses: its ipBlocks' intervals and the pods it selects, kept so
    that a pod's change patches the membership instead of resolving every selector again."""

    blocks: tuple[tuple[int, int, int], ...]  # (IP version, first, last)
    members: dict[str, tuple[tuple[int, int], ...]]  # pod key -> (IP version, address) of its addresses
    merged: AddressSet | None = None  # None: to be merged again

    def patch(self, key: str, numbers: tuple[tuple[int, int], ...] | None) -> None:
        """The addresses of the new version of pod `key` if the peers select it, else None (gone, or
        not selected)."""
        if self.members.get(key) != numbers:
            if numbers is None:
                del self.members[key]
            else:
                self.members[key] = numbers
            self.merged = None

    def addresses(self) -> AddressSet:
        if self.merged is None:
            spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
            for version, first, last in self.blocks:
                spans[version].append((first, last))
            for numbers in self.members.values():
                for version, number in numbers:
                    spans[version].append((number, number))
            self.merged = AddressSet.of_spans(spans)
        return self.merged


class Compiler:
    """Resolves policies against snapshots of pods and namespaces, one `load` at a time.

    What depends on pods and namespaces alone (the label index, each distinct peer list's addresses) is
    kept from one snapshot to the next, and redone only where a pod that changed (in either version)
    could be a peer: a label change or a new pod costs a fraction of a whole compile. The rest (chains,
    ports, problems) depends on the policies too and is redone on every load.
    """

    def __init__(self) -> None:
        self.policies: list[Policy] = []
        self.policies_in: defaultdict[str, list[Policy]] = defaultdict(list)  # a policy selects only its namespace
        self.pods: list[Pod] = []  # with their own network, sorted by key
        self._by_pod_key: dict[str, Pod] = {}
        self.namespaces: dict[str, Namespace] = {}
        self.by_namespace: defaultdict[str, dict[str, Pod]] = defaultdict(dict)
        self.by_label: defaultdict[tuple[str, str, str], dict[str, Pod]] = defaultdict(dict)  # (ns, key, value)
        self.by_key: defaultdict[tuple[str, str], dict[str, Pod]] = defaultdict(dict)  # (ns, key)
        self._sets: dict[PeerSig, _PeerSet] = {}
        self._clear()

    def _clear(self) -> None:
        self.problems: dict[Problem, None] = {}
        self._peers: dict[_RuleKey, AddressSet | None] = {}
        self._named: dict[_RuleKey, tuple[NamedTarget, ...]] = {}
        self._numeric: dict[_RuleKey, tuple[PortRange, ...]] = {}
        self._checked: set[_RuleKey] = set()
        self._isolating: dict[tuple[str, Labels, str], tuple[Policy, ...]] = {}
        self._chains: dict[tuple[str, tuple[PolicyRef, ...], tuple[tuple[int, ...], ...]], PodChain] = {}

    def load(self, policies: Iterable[Policy], pods: Iterable[Pod], namespaces: Iterable[Namespace]) -> Compiler:
        """Take a new snapshot (the whole of it, not a delta)."""
        self._clear()
        self.policies = sorted(policies, key=lambda p: p.ref.key)
        self.policies_in = defaultdict(list)
        for policy in self.policies:
            self.policies_in[policy.ref.namespace].append(policy)
        now = {p.key: p for p in pods if p.has_pod_network}
        spaces = {n.name: n for n in namespaces}
        for name in {p.namespace for p in now.values()} - spaces.keys():  # exists without its object
            spaces[name] = namespace(name)
        if spaces != self.namespaces:  # rare: every namespaceSelector may now pick other namespaces
            self.namespaces = spaces
            self._sets.clear()
        old = self._by_pod_key
        changed = [p for key, p in old.items() if (q := now.get(key)) is not p and q != p]
        changed += [p for key, p in now.items() if (q := old.get(key)) is not p and q != p]
        if changed:
            for pod in changed:  # old versions first: each is taken out before its successor goes in
                self._index(pod, pod is now.get(pod.key))
            self._by_pod_key = now
            self.pods = sorted(now.values(), key=lambda p: p.key)
            if len(changed) > REBUILD_AFTER:  # patching would cost more than resolving again
                self._sets.clear()
            numbers = {p.key: _numbers(p) for p in changed if now.get(p.key) is p}  # (gone: absent)
            keys = {p.key for p in changed}
            for sig, found in self._sets.items():
                for key in keys:
                    pod = now.get(key)
                    found.patch(key, numbers[key] if pod is not None and self._selected(sig, pod) else None)
        return self

    def _index(self, pod: Pod, add: bool) -> None:
        ns, key = pod.namespace, pod.key
        places = [self.by_namespace[ns], *(self.by_label[ns, k, v] for k, v in pod.labels.items()),
                  *(self.by_key[ns, k] for k in pod.labels)]
        for place in places:
            if add:
                place[key] = pod
            else:
                place.pop(key, None)

    def _selected(self, sig: PeerSig, pod: Pod) -> bool:
        """Whether a peer list selects `pod` (its ipBlocks aside)."""
        space = self.namespaces.get(pod.namespace) or namespace(pod.namespace)
        for peer in sig[1]:
            if peer.ip_block:
                continue
            if peer.namespace_selector is None:
                if pod.namespace != sig[0]:
                    continue
            elif not peer.namespace_selector.matches(space.labels):
                continue
            if peer.pod_selector is None or peer.pod_selector.matches(pod.labels):
                return True
        return False

    def peer_pods(self, namespace: str, peer: Peer) -> list[Pod]:
        """The pods `peer` of a policy in `namespace` selects."""
        if peer.namespace_selector is None:
            spaces = [namespace]
        else:
            ns_sel = peer.namespace_selector
            spaces = [n for n, ns in sorted(self.namespaces.items()) if ns_sel.matches(ns.labels)]
        sel = peer.pod_selector
        if sel is None or sel.is_empty:
            return [p for n in spaces for p in self.by_namespace.get(n, {}).values()]
        return [p for n in spaces for p in self.candidates(n, sel) if sel.matches(p.labels)]

    def candidates(self, namespace: str, sel: Selector) -> Collection[Pod]:
        """The pods of a namespace that may match `sel`: those having its narrowest `In` or `Exists`
        requirement, from the label index (matching every pod against every peer is the compiler's main
        cost); all the namespace's pods when it has only `NotIn` and `DoesNotExist`."""
        narrowest: Collection[Pod] | None = None
        for r in sel.requirements:
            pods: Collection[Pod]
            if r.operator == "In":
                pods = [p for v in r.values for p in self.by_label.get((namespace, r.key, v), {}).values()]
            elif r.operator == "Exists":
                pods = self.by_key.get((namespace, r.key), {}).values()
            else:
                continue
            if narrowest is None or len(pods) < len(narrowest):
                narrowest = pods
        return self.by_namespace.get(namespace, {}).values() if narrowest is None else narrowest

    def peers(self, key: _RuleKey, rule: Rule) -> AddressSet | None:
        """Every address the rule's peers cover (None: all addresses)."""
        if key not in self._peers:
            self._peers[key] = None if rule.peers is None else self.address_set(key.ref.namespace, rule.peers)
        return self._peers[key]

    def address_set(self, namespace: str, peers: tuple[Peer, ...]) -> AddressSet:
        """The addresses of `peers` (of a policy in `namespace`), shared by rules with the same peers:
        policies are often written alike, and resolving thousands of pods is the compiler's main cost."""
        sig = (namespace if any(p.namespace_selector is None and not p.ip_block for p in peers) else "", peers)
        found = self._sets.get(sig)
        if found is None:
            blocks: list[tuple[int, int, int]] = []
            members: dict[str, tuple[tuple[int, int], ...]] = {}
            for peer in peers:
                if peer.ip_block:
                    blocks += [(n.version, int(n.network_address), int(n.broadcast_address))
                               for n in block_networks(peer.ip_block)]
                else:
                    members.update((p.key, _numbers(p)) for p in self.peer_pods(namespace, peer))
            found = self._sets[sig] = _PeerSet(tuple(blocks), members)
        return found.addresses()

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
            sel = key.policy.pod_selector
            mates = [p for p in self.candidates(key.ref.namespace, sel) if sel.matches(p.labels)]
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

    def isolating(self, namespace: str, labels: Labels, direction: str) -> tuple[Policy, ...]:
        """The policies isolating pods with these labels in one direction (pods are often labelled alike)."""
        key = (namespace, labels, direction)
        if key not in self._isolating:
            mine = self.policies_in.get(namespace, ())
            self._isolating[key] = tuple(p for p in mine if p.rules(direction) is not None and
                                         p.pod_selector.matches(labels))
        return self._isolating[key]

    def chain(self, pod: Pod, direction: str) -> PodChain | None:
        """The pod's chain in one direction, or None when no policy isolates it that way.

        Pods isolated by the same policies, with named ports resolving alike, share one chain object.
        """
        isolating = self.isolating(pod.namespace, pod.labels, direction)
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
        where = f"spec.{key.direction}[{key.index}]"
        self.problems[Problem("NetworkPolicy", key.ref.namespace, key.ref.name, f"{where}: {message}")] = None


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
    problems: Iterable[Problem] = (),
    compiler: Compiler | None = None,
) -> NodeModel:
    """The model for one node's own pods; `problems` from parsing are carried along. The agent passes its
    `compiler` from one sync to the next (see `Compiler`); without one, everything is resolved afresh."""
    c = (compiler or Compiler()).load(policies, pods, namespaces)
    targets = tuple(c.target(p) for p in c.pods if p.node_name == node)
    return NodeModel(node, targets, tuple(dict.fromkeys([*problems, *sorted(c.problems, key=str)])))
