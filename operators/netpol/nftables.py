"""Build a NodeModel into one nftables table, `inet knet-netpol`, separate from the proxy's tables.

Where it hooks, and why there:
- `forward` and `input`, priority `filter` (0): the proxy DNATs Service traffic in prerouting at
  `dstnat` (-100), so by now the destination is the real pod address; source NAT happens later, in
  postrouting, so the source is still the real client. `forward` sees pod<->pod and pod<->outside
  traffic, `input` sees local pods talking to the node itself (egress only).
- `output`, priority `filter` (0), after the proxy's output DNAT at `dstnat` (-100): only with
  `filter_node_traffic`. By default the API's rule that a pod's own node may always reach it holds,
  so node-originated traffic (kubelet probes, hostNetwork pods) is not filtered at all.

How a packet is matched, in constant time whatever the number of policies and rules:
established/related replies pass first (in input/output, IPv6 neighbour discovery too); then the
`egress-v4/-v6` (source) and `ingress-v4/-v6` (destination) verdict maps send a local pod's address
to the chain of its policy set (`eg-`/`in-` + hash, shared by pods with equal rules). There, at most
three lookups decide: the peer in the union of the peers of rules without ports, the peer address,
protocol and port in the union of egress named ports, and protocol . port in the chain's port map,
whose ranges go to the chain of the rules opening them, which looks the peer up in the union of their
peers. A chain `return`s when the packet is allowed, so the other direction is still checked, and
drops otherwise. Only hashes, addresses and numbers are built from user input; policy names appear
only in comments, and only after validation. The table is built as objects of
`operators.nft.table` (the proxy's model), so the agent applies it whole or diffs it object by object.

Options: `log_drops` (rate-limited `log prefix "knet-netpol drop <direction> <policies>: "` before each
chain's drop), `counters` (named counters `pol-<hash>-allow`/`-drop` per policy: a drop
counts for every policy isolating the pod, an allowed flow for every policy among the rules that
matched together), `isolate_unprogrammed` (local pod-CIDR addresses missing from `local-pods-v4/-v6`
are dropped until the agent programs them),
`filter_node_traffic` (the output chain above).
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from operators.kube.parse import is_dns_subdomain
from operators.netpol.model import AddressSet, CompiledRule, NamedTarget, NodeModel, PodChain, Span
from operators.netpol.policy import INGRESS, Network
from operators.nft.table import Chain, Counter, NftSet, Table

TABLE = "knet-netpol"
FAMILIES = ((4, "ip", "ipv4_addr"), (6, "ip6", "ipv6_addr"))
_PROTO = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
_MAX_COMMENT = 128
_ND = ("nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert")


@dataclass(frozen=True)
class RenderOptions:
    """Optional features: drop logging, per-policy counters, the new-pod guard, node traffic filtering."""

    log_drops: bool = False
    log_rate: int = 10  # log lines per second per chain; dropping itself is never rate-limited
    counters: bool = False
    isolate_unprogrammed: bool = False
    filter_node_traffic: bool = False

    def __post_init__(self) -> None:
        rate = self.log_rate
        if isinstance(rate, bool) or not isinstance(rate, int) or not 0 < rate <= 10000:
            raise ValueError(f"log_rate must be 1..10000 lines per second, not {self.log_rate!r}")


def counter_names(policy_id: str) -> tuple[str, str]:
    """The (allowed, dropped) named counters of a policy, for the agent's metrics."""
    return f"pol-{policy_id}-allow", f"pol-{policy_id}-drop"


def _comment(text: str) -> str:
    return text[:_MAX_COMMENT]


def _intervals(spans: Sequence[Span], version: int) -> tuple[tuple[str, str], ...]:
    """Disjoint address intervals of one family as set elements: an address, a CIDR where the interval
    is exactly one, else an `a-b` range."""
    family, bits = (socket.AF_INET, 32) if version == 4 else (socket.AF_INET6, 128)

    def text(n: int) -> str:
        return socket.inet_ntop(family, n.to_bytes(bits // 8, "big"))

    out = []
    for first, last in spans:
        size = last - first + 1
        if size == 1:
            out.append((text(first), ""))
        elif size & (size - 1) == 0 and first % size == 0:  # a power of two, aligned: one network
            out.append((f"{text(first)}/{bits - size.bit_length() + 1}", ""))
        else:
            out.append((f"{text(first)}-{text(last)}", ""))
    return tuple(out)


@dataclass(frozen=True)
class _PortGroup:
    """The port ranges of a chain that the same rules open (to their peers)."""

    name: str  # follows from the chain's content name, so it stays while peers come and go
    rules: tuple[CompiledRule, ...]
    ranges: list[tuple[str, int, int]]  # (nft protocol, first port, last port)

    @property
    def keys(self) -> list[str]:
        """The group's elements in the chain's port map."""
        return [_range_key(*r) for r in self.ranges]

    @property
    def note(self) -> str:
        keys = self.keys
        return ", ".join(keys) if len(keys) <= 4 else f"{', '.join(keys[:4])} (+{len(keys) - 4})"


def _range_key(proto: str, first: int, last: int) -> str:
    return f"{proto} . {first}" if first == last else f"{proto} . {first}-{last}"


def _port_groups(chain: PodChain) -> list[_PortGroup]:
    """The chain's port rules cut into disjoint port ranges (a sweep over where ranges start and end),
    each with the rules that open all of it; ranges opened by the same rules form one group."""
    groups: dict[tuple[int, ...], _PortGroup] = {}
    port_rules = [(i, rule) for i, rule in enumerate(chain.rules) if rule.ports]
    for proto in sorted({r.protocol for _, rule in port_rules for r in rule.ports or ()}):
        events: dict[int, list[tuple[int, int]]] = defaultdict(list)  # port -> (rule index, +1 or -1)
        for i, rule in port_rules:
            for r in rule.ports or ():
                if r.protocol == proto:
                    events[r.first].append((i, 1))
                    events[r.last + 1].append((i, -1))
        active: dict[int, int] = defaultdict(int)
        cuts = sorted(events)
        ranges: list[tuple[int, int, tuple[int, ...]]] = []
        before: tuple[int, ...] = ()  # the rules opening the ports just below `port`
        for port, after in itertools.pairwise(cuts):
            for i, step in events[port]:
                active[i] += step
            covering = tuple(i for i in sorted(active) if active[i] > 0)
            if covering and covering == before:  # the same rules as just below: one range
                ranges[-1] = (ranges[-1][0], after - 1, covering)
            elif covering:
                ranges.append((port, after - 1, covering))
            before = covering
        for first, last, covering in ranges:
            if covering not in groups:
                rules = tuple(chain.rules[i] for i in covering)
                groups[covering] = _PortGroup(f"{chain.name}-p{len(groups)}", rules, [])
            groups[covering].ranges.append((_PROTO[proto], first, last))
    return list(groups.values())


def _union(rules: Sequence[CompiledRule], cache: dict[tuple[int, ...], AddressSet | None]) -> AddressSet | None:
    """All the rules' peers (None: any address), merged once per distinct list of peer sets."""
    if any(r.peers is None for r in rules):
        return None
    key = tuple(sorted(id(r.peers) for r in rules))
    if key not in cache:
        spans = {v: [s for r in rules if r.peers is not None for s in r.peers.family(v)] for v in (4, 6)}
        cache[key] = AddressSet.of_spans(spans)
    return cache[key]


def _allow(rules: Sequence[CompiledRule], opts: RenderOptions) -> str:
    """The verdict of a match that some of `rules` allow: return to the base chain, counted (with
    counters on) for each policy among them, as a merged match cannot tell which one allowed it."""
    ids = dict.fromkeys(r.policy.id for r in rules)
    counters = "".join(f'counter name "{counter_names(i)[0]}" ' for i in ids) if opts.counters else ""
    return f'{counters}return comment "{_comment(", ".join(f"{r.policy.label} {r.where}" for r in rules))}"'


class _ChainRenderer:
    """A pod chain in constant time per packet, however many policies and rules make it up:

    - rules without ports (all traffic): one lookup in the union of their peers, `<chain>-any-v4/-v6`;
    - egress named ports: one lookup of address . protocol . port in `<chain>-named-v4/-v6`;
    - the other rules: one lookup of protocol . port in the verdict map `<chain>-ports`, whose
      port ranges `goto` the chain of the rules that open them, `<chain>-p<n>`, which looks the peer
      up in the union of those rules' peers (`<chain>-p<n>-v4/-v6`) and drops otherwise.
    """

    def __init__(self, opts: RenderOptions) -> None:
        self.opts = opts
        self.unions: dict[tuple[int, ...], AddressSet | None] = {}
        self.elements: dict[tuple[int, int], tuple[tuple[str, str], ...]] = {}  # a union's elements, built once

    def peer_sets(self, name: str, peers: AddressSet, note: str) -> list[NftSet]:
        out: list[NftSet] = []
        for v, _, typ in FAMILIES:
            if nets := peers.family(v):
                if (id(peers), v) not in self.elements:
                    self.elements[(id(peers), v)] = _intervals(nets, v)
                out.append(NftSet(f"{name}-v{v}", typ, ("interval",), comment=_comment(note),
                                  elements=self.elements[(id(peers), v)]))
        return out

    def peer_matches(self, name: str, side: str, peers: AddressSet | None, verdict: str) -> list[str]:
        if peers is None:
            return [verdict]
        return [f"{kw} {side} @{name}-v{v} {verdict}" for v, kw, _ in FAMILIES if peers.family(v)]

    def render(self, chain: PodChain) -> tuple[list[NftSet], list[Chain]]:
        """The chain's sets and maps, and its chains: the port groups' first, then its own."""
        side = "saddr" if chain.direction == INGRESS else "daddr"
        drop = _drop_rules(chain, self.opts)
        who = ", ".join(p.label for p in chain.policies)
        sets: list[NftSet] = []
        body: list[str] = []
        if everything := [r for r in chain.rules if r.ports is None]:
            peers = _union(everything, self.unions)
            name = f"{chain.name}-any"
            sets += self.peer_sets(name, peers, "all traffic") if peers is not None else []
            body += self.peer_matches(name, side, peers, _allow(everything, self.opts))
        if named := [r for r in chain.rules if r.named]:
            for v, kw, typ in FAMILIES:
                items = sorted({_named_element(t) for r in named for t in r.named if _version(t.ip) == v})
                if items:
                    name = f"{chain.name}-named-v{v}"
                    sets.append(NftSet(name, f"{typ} . inet_proto . inet_service", comment="named ports",
                                       elements=tuple((item, "") for item in items)))
                    body.append(f"{kw} {side} . meta l4proto . th dport @{name} {_allow(named, self.opts)}")
        groups = _port_groups(chain)
        chains: list[Chain] = []
        for group in groups:
            peers = _union(group.rules, self.unions)
            sets += self.peer_sets(group.name, peers, group.note) if peers is not None else []
            allow = self.peer_matches(group.name, side, peers, _allow(group.rules, self.opts))
            chains.append(Chain(group.name, (*allow, *drop)))
        if groups:
            ranges = sorted(((r, g.name) for g in groups for r in g.ranges), key=lambda pair: pair[0])
            sets.append(NftSet(f"{chain.name}-ports", "inet_proto . inet_service : verdict", ("interval",),
                               elements=tuple((_range_key(*r), f"goto {name}") for r, name in ranges)))
            body.append(f"meta l4proto . th dport vmap @{chain.name}-ports")
        comment = _comment(f"{chain.direction} of pods selected by {who}")
        return sets, [*chains, Chain(chain.name, (*body, *drop), comment=comment)]


def _version(ip: str) -> int:
    return ipaddress.ip_address(ip).version


def _drop_rules(chain: PodChain, opts: RenderOptions) -> list[str]:
    out = []
    if opts.log_drops:
        names = ",".join(p.label for p in chain.policies)
        who = names if len(names) <= 80 else f"{chain.name} ({len(chain.policies)} policies)"
        out.append(f'limit rate {opts.log_rate}/second log prefix "knet-netpol drop {chain.direction} {who}: "')
    counters = (
        "".join(f'counter name "{counter_names(p.id)[1]}" ' for p in chain.policies) if opts.counters else ""
    )
    return [*out, f"{counters}drop"]


def _named_element(t: NamedTarget) -> str:
    return f"{t.ip} . {_PROTO[t.protocol]} . {t.port}"


def _verdict_maps(model: NodeModel) -> list[NftSet]:
    out: list[NftSet] = []
    for direction in ("egress", "ingress"):
        for v, _, typ in FAMILIES:
            pairs = sorted(
                (ipaddress.ip_address(ip), chain.name)
                for pod in model.pods
                if (chain := pod.chain(direction))
                for ip in pod.ips
                if ipaddress.ip_address(ip).version == v
            )
            elements = tuple((str(ip), f"jump {name}") for ip, name in pairs)
            out.append(NftSet(f"{direction}-v{v}", f"{typ} : verdict", elements=elements))
    return out


def _guard(
    model: NodeModel, pod_cidrs: Sequence[Network], opts: RenderOptions
) -> tuple[list[NftSet], dict[str, list[str]]]:
    """The set of programmed local pods, and per base chain the rules dropping unprogrammed ones."""
    if not (opts.isolate_unprogrammed and pod_cidrs):
        return [], {}
    sets: list[NftSet] = []
    rules: dict[str, list[str]] = {"forward": [], "input": [], "output": []}
    note = 'comment "local pod not yet programmed"'
    for v, kw, typ in FAMILIES:
        cidrs = sorted((c for c in pod_cidrs if c.version == v), key=lambda n: int(n.network_address))
        if not cidrs:
            continue
        ips = sorted(a for p in model.pods for ip in p.ips if (a := ipaddress.ip_address(ip)).version == v)
        sets.append(NftSet(f"local-pods-v{v}", typ, elements=tuple((str(ip), "") for ip in ips)))
        cidr = ", ".join(map(str, cidrs))
        src = f"{kw} saddr {{ {cidr} }} {kw} saddr != @local-pods-v{v}"
        dst = f"{kw} daddr {{ {cidr} }} {kw} daddr != @local-pods-v{v}"
        rules["forward"] += [f"{src} drop {note}", f"{dst} drop {note}"]
        rules["input"] += [f"{src} fib saddr type != local drop {note}"]
        rules["output"] += [f"{dst} drop {note}"]
    return sets, rules


def _base_chain(name: str, sides: Sequence[tuple[str, str]], guard: list[str]) -> Chain:
    rules = ["ct state established,related accept"]
    if name != "forward":  # IPv6 neighbour discovery between a pod and its node is not traffic to police
        rules.append(f"icmpv6 type {{ {', '.join(_ND)} }} accept")
    rules += guard
    for direction, side in sides:
        rules += [f"{kw} {side} vmap @{direction}-v{v}" for v, kw, _ in FAMILIES]
    return Chain(name, tuple(rules), f"type filter hook {name} priority filter; policy accept;")


def build_table(model: NodeModel, pod_cidrs: Sequence[Network] = (), opts: RenderOptions | None = None) -> Table:
    """The table `inet knet-netpol` for `model`: what the agent applies whole (`Table.full`) or as a diff
    from the applied one (`operators.nft.table.diff_table`)."""
    opts = opts or RenderOptions()
    counters = tuple(Counter(name, _comment(ref.label)) for ref in model.policies for name in counter_names(ref.id)
                     ) if opts.counters else ()
    sets, guard_rules = _guard(model, pod_cidrs, opts)
    chains: list[Chain] = []
    renderer = _ChainRenderer(opts)
    for chain in model.chains:
        chain_sets, pod_chains = renderer.render(chain)
        sets += chain_sets
        chains += pod_chains
    sets += _verdict_maps(model)
    chains.append(_base_chain("forward", (("egress", "saddr"), ("ingress", "daddr")), guard_rules.get("forward", [])))
    chains.append(_base_chain("input", (("egress", "saddr"),), guard_rules.get("input", [])))
    if opts.filter_node_traffic:
        chains.append(_base_chain("output", (("ingress", "daddr"),), guard_rules.get("output", [])))
    return Table("inet", TABLE, "knet NetworkPolicy enforcement", tuple(sets), tuple(chains), counters=counters)


def ruleset_text(table: Table, node: str) -> str:
    """The whole table for `nft -f`: it replaces the table atomically, or creates it on a clean node."""
    node = node if is_dns_subdomain(node) else "(invalid node name)"
    return f"# knet NetworkPolicy rules for node {node}; generated, do not edit.\n" + table.full()


def render_nftables(
    model: NodeModel, pod_cidrs: Sequence[Network] = (), opts: RenderOptions | None = None
) -> str:
    """The full ruleset text of `build_table`, for `knet render netpol` and the golden tests."""
    return ruleset_text(build_table(model, pod_cidrs, opts), model.node)
