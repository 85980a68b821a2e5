"""Render a NodeModel as one nftables table, `inet knet-netpol`, separate from the proxy's tables.

Where it hooks, and why there:
- `forward` and `input`, priority `filter` (0): the proxy DNATs Service traffic in prerouting at
  `dstnat` (-100), so by now the destination is the real pod address; source NAT happens later, in
  postrouting, so the source is still the real client. `forward` sees pod<->pod and pod<->outside
  traffic, `input` sees local pods talking to the node itself (egress only).
- `output`, priority `filter` (0), after the proxy's output DNAT at `dstnat` (-100): only with
  `filter_node_traffic`. By default the API's rule that a pod's own node may always reach it holds,
  so node-originated traffic (kubelet probes, hostNetwork pods) is not filtered at all.

How a packet is matched, in constant time per policy set rather than a scan over all policies:
established/related replies pass first (in input/output, IPv6 neighbour discovery too); then the
`egress-v4/-v6` (source) and `ingress-v4/-v6` (destination) verdict maps send a local pod's address
to the chain of its policy set (`eg-`/`in-` + hash, shared by pods with equal rules). A chain
`return`s when a rule allows the packet, so the other direction is still checked, and drops otherwise.
Rule peers are interval sets (`peer-<hash>-v4/-v6`), egress named ports concatenated sets
(`named-<hash>-v4/-v6`). Only hashes, addresses and numbers are built from user input; policy names
appear only in comments, and only after validation.

Options: `log_drops` (rate-limited `log prefix "knet-netpol drop <direction> <policies>: "` before each
chain's drop), `counters` (named counters `pol-<hash>-allow`/`-drop` per policy), `isolate_unprogrammed`
(local pod-CIDR addresses missing from `local-pods-v4/-v6` are dropped until the agent programs them),
`filter_node_traffic` (the output chain above).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from operators.kube.parse import is_dns_subdomain
from operators.netpol.model import CompiledRule, NamedTarget, NodeModel, PodChain, PortRange, Span
from operators.netpol.policy import INGRESS, Network

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
    return f'comment "{text[:_MAX_COMMENT]}"'


def _intervals(spans: Sequence[Span], version: int) -> list[str]:
    """Disjoint address intervals of one family as set elements: an address, a CIDR where the interval
    is exactly one, else an `a-b` range."""
    family, bits = (socket.AF_INET, 32) if version == 4 else (socket.AF_INET6, 128)

    def text(n: int) -> str:
        return socket.inet_ntop(family, n.to_bytes(bits // 8, "big"))

    out = []
    for first, last in spans:
        size = last - first + 1
        if size == 1:
            out.append(text(first))
        elif size & (size - 1) == 0 and first % size == 0:  # a power of two, aligned: one network
            out.append(f"{text(first)}/{bits - size.bit_length() + 1}")
        else:
            out.append(f"{text(first)}-{text(last)}")
    return out


def _elements(items: Sequence[str], indent: str, per_line: int = 6) -> str:
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return f"{indent}elements = {{ " + f",\n{indent}             ".join(lines) + " }"


def _set(
    name: str, typ: str, items: Sequence[str], flags: str = "", comment: str = "", per_line: int = 6
) -> list[str]:
    out = [f"\tset {name} {{", f"\t\ttype {typ}"]
    if flags:
        out.append(f"\t\tflags {flags}")
    if comment:
        out.append(f"\t\t{_comment(comment)}")
    if items:
        out.append(_elements(items, "\t\t", per_line))
    return [*out, "\t}"]


def _ports(ranges: Sequence[PortRange]) -> list[str]:
    """One match per protocol: `meta l4proto P` alone when every port of it is allowed."""
    out = []
    for proto in sorted({r.protocol for r in ranges}):
        mine = [r for r in ranges if r.protocol == proto]
        match = f"meta l4proto {_PROTO[proto]}"
        if not any(r.every_port for r in mine):
            items = [str(r.first) if r.first == r.last else f"{r.first}-{r.last}" for r in mine]
            match += f" th dport {items[0]}" if len(items) == 1 else f" th dport {{ {', '.join(items)} }}"
        out.append(match)
    return out


def _rule_lines(rule: CompiledRule, opts: RenderOptions) -> list[str]:
    side = "saddr" if rule.direction == INGRESS else "daddr"
    verdict = (f'counter name "{counter_names(rule.policy.id)[0]}" ' if opts.counters else "") + "return"
    note = _comment(f"{rule.policy.label} {rule.where}")
    out: list[str] = []
    addr_matches = (
        [""]
        if rule.peers is None
        else [f"{kw} {side} @{rule.peer_set}-v{v} " for v, kw, _ in FAMILIES if rule.peers.family(v)]
    )
    port_matches = [""] if rule.ports is None else [m + " " for m in _ports(rule.ports)]
    out += [f"\t\t{a}{p}{verdict} {note}" for a in addr_matches for p in port_matches]
    for v, kw, _ in FAMILIES:
        if any(ipaddress.ip_address(t.ip).version == v for t in rule.named):
            out.append(f"\t\t{kw} {side} . meta l4proto . th dport @{rule.named_set}-v{v} {verdict} {note}")
    return out or [f"\t\t# {rule.policy.label} {rule.where}: matches nothing at present"]


def _drop_lines(chain: PodChain, opts: RenderOptions) -> list[str]:
    out = []
    if opts.log_drops:
        names = ",".join(p.label for p in chain.policies)
        who = names if len(names) <= 80 else f"{chain.name} ({len(chain.policies)} policies)"
        out.append(
            f'\t\tlimit rate {opts.log_rate}/second log prefix "knet-netpol drop {chain.direction} {who}: "'
        )
    counters = (
        "".join(f'counter name "{counter_names(p.id)[1]}" ' for p in chain.policies) if opts.counters else ""
    )
    return [*out, f"\t\t{counters}drop"]


def _chain(chain: PodChain, opts: RenderOptions) -> list[str]:
    who = ", ".join(p.label for p in chain.policies)
    out = [f"\tchain {chain.name} {{", f"\t\t{_comment(f'{chain.direction} of pods selected by {who}')}"]
    for rule in chain.rules:
        out += _rule_lines(rule, opts)
    return [*out, *_drop_lines(chain, opts), "\t}"]


def _peer_sets(rules: Iterable[CompiledRule]) -> list[str]:
    out: list[str] = []
    done: set[str] = set()
    elements: dict[tuple[int, int], list[str]] = {}  # the compiler shares one AddressSet among equal peers
    for rule in sorted(rules, key=lambda r: r.peer_set):
        if rule.peer_set in done:
            continue
        done.add(rule.peer_set)
        note = f"{rule.policy.label} {rule.where}"
        for v, _, typ in FAMILIES:
            used = rule.peers is not None and rule.ports != ()
            nets = rule.peers.family(v) if rule.peers is not None else ()
            if used and nets:
                if (id(rule.peers), v) not in elements:
                    elements[(id(rule.peers), v)] = _intervals(nets, v)
                out += _set(f"{rule.peer_set}-v{v}", typ, elements[(id(rule.peers), v)], "interval", note)
            named = [t for t in rule.named if ipaddress.ip_address(t.ip).version == v]
            if named:
                items = [_named_element(t) for t in named]
                typ_named = f"{typ} . inet_proto . inet_service"
                out += _set(f"{rule.named_set}-v{v}", typ_named, items, "", note, per_line=3)
    return out


def _named_element(t: NamedTarget) -> str:
    return f"{t.ip} . {_PROTO[t.protocol]} . {t.port}"


def _verdict_maps(model: NodeModel) -> list[str]:
    out: list[str] = []
    for direction in ("egress", "ingress"):
        for v, _, typ in FAMILIES:
            pairs = sorted(
                (ipaddress.ip_address(ip), chain.name)
                for pod in model.pods
                if (chain := pod.chain(direction))
                for ip in pod.ips
                if ipaddress.ip_address(ip).version == v
            )
            items = [f"{ip} : jump {name}" for ip, name in pairs]
            out += [f"\tmap {direction}-v{v} {{", f"\t\ttype {typ} : verdict"]
            out += [_elements(items, "\t\t", per_line=2)] if items else []
            out.append("\t}")
    return out


def _guard(
    model: NodeModel, pod_cidrs: Sequence[Network], opts: RenderOptions
) -> tuple[list[str], dict[str, list[str]]]:
    """The set of programmed local pods, and per base chain the rules dropping unprogrammed ones."""
    if not (opts.isolate_unprogrammed and pod_cidrs):
        return [], {}
    sets: list[str] = []
    rules: dict[str, list[str]] = {"forward": [], "input": [], "output": []}
    note = _comment("local pod not yet programmed")
    for v, kw, typ in FAMILIES:
        cidrs = sorted((c for c in pod_cidrs if c.version == v), key=lambda n: int(n.network_address))
        if not cidrs:
            continue
        ips = sorted(a for p in model.pods for ip in p.ips if (a := ipaddress.ip_address(ip)).version == v)
        sets += _set(f"local-pods-v{v}", typ, [str(ip) for ip in ips])
        cidr = ", ".join(map(str, cidrs))
        src = f"{kw} saddr {{ {cidr} }} {kw} saddr != @local-pods-v{v}"
        dst = f"{kw} daddr {{ {cidr} }} {kw} daddr != @local-pods-v{v}"
        rules["forward"] += [f"\t\t{src} drop {note}", f"\t\t{dst} drop {note}"]
        rules["input"] += [f"\t\t{src} fib saddr type != local drop {note}"]
        rules["output"] += [f"\t\t{dst} drop {note}"]
    return sets, rules


def _base_chain(name: str, sides: Sequence[tuple[str, str]], guard: list[str]) -> list[str]:
    out = [
        f"\tchain {name} {{",
        f"\t\ttype filter hook {name} priority filter; policy accept;",
        "\t\tct state established,related accept",
    ]
    if name != "forward":  # IPv6 neighbour discovery between a pod and its node is not traffic to police
        out.append(f"\t\ticmpv6 type {{ {', '.join(_ND)} }} accept")
    out += guard
    for direction, side in sides:
        out += [f"\t\t{kw} {side} vmap @{direction}-v{v}" for v, kw, _ in FAMILIES]
    return [*out, "\t}"]


def render_nftables(
    model: NodeModel, pod_cidrs: Sequence[Network] = (), opts: RenderOptions | None = None
) -> str:
    """The full ruleset text for `nft -f`: it replaces the table atomically, or creates it on a clean node."""
    opts = opts or RenderOptions()
    node = model.node if is_dns_subdomain(model.node) else "(invalid node name)"
    out = [
        f"# knet NetworkPolicy rules for node {node}; generated, do not edit.",
        f"add table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        f"\t{_comment('knet NetworkPolicy enforcement')}",
    ]
    if opts.counters:
        for ref in model.policies:
            out += [f"\tcounter {name} {{ {_comment(ref.label)} }}" for name in counter_names(ref.id)]
    guard_sets, guard_rules = _guard(model, pod_cidrs, opts)
    out += guard_sets
    out += _peer_sets(r for c in model.chains for r in c.rules)
    out += _verdict_maps(model)
    for chain in model.chains:
        out += _chain(chain, opts)
    out += _base_chain("forward", (("egress", "saddr"), ("ingress", "daddr")), guard_rules.get("forward", []))
    out += _base_chain("input", (("egress", "saddr"),), guard_rules.get("input", []))
    if opts.filter_node_traffic:
        out += _base_chain("output", (("ingress", "daddr"),), guard_rules.get("output", []))
    return "\n".join([*out, "}", ""])
