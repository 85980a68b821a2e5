"""Proxy model -> nftables: the main table `knet-proxy` (filters, masquerade) and the DNAT shards
`knet-proxy-0` to `knet-proxy-15`, IPv4 and IPv6 side by side, all written in one transaction.

Every chain, map and set, and what each does, is described in operators/proxy/README.md ("The
ruleset"). What shapes this module:

- inet tables, so that one transaction programs both families; every per-family object names its
  family (`service-ips-v4`, `svc6-...`).
- Shards, because a transaction that adds a rule with a NAT expression, a jump or a verdict-map element
  makes the kernel validate every chain reachable in the table it touches. A Service's ports live in
  shard `shard_of(namespace, name)` for good, so such a change validates one shard, not every Service. A shard
  holds the DNAT path, the main table what every packet is filtered by; each frontend is in one shard's
  maps only, so the shards' NAT base chains, run in turn, give the result of one table.
- Endpoints are map elements picked by chains shared by every port of a protocol with as many
  endpoints, not rules: an endpoint change that keeps their number writes no rule, so the kernel has
  nothing to validate.
- Rules are rendered per service port (`PortRules`) and the tables and chain groups built from them are
  reused by object identity (`RenderCache`), so an update renders and diffs only what changed; a full
  build can hand out each shard's table as soon as its Services are built (`FullBuild`).
"""

from __future__ import annotations

import itertools
import operator
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from operators.nft.table import Chain, NftSet, Ruleset, Table, diff
from operators.proxy import names
from operators.proxy.model import ProxiedPort, ProxyModel, Target, of_family

TABLE = "knet-proxy"  # filters and masquerade; DNAT in the shards `knet-proxy-0` ... `knet-proxy-15`
SHARDS = 16
FAMILY = "inet"
# Numeric priorities: nft accepts "dstnat" only on prerouting. DNAT is -100 (dstnat), SNAT 100 (srcnat).
DNAT_PRIORITY = -100
SNAT_PRIORITY = 100
FILTER_PRIORITY = DNAT_PRIORITY - 10  # before DNAT: filters see the service address
POST_DNAT_PRIORITY = DNAT_PRIORITY + 10
REJECT = "goto reject-chain"
MASQ = "jump mark-for-masquerade"


def _ip(family: int) -> str:
    return "ip" if family == 4 else "ip6"


def _v(family: int) -> str:
    return f"v{family}"


def _set_expr(items: tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _dnat(p: ProxiedPort, t: Target) -> str:
    dest = t.ip if p.family == 4 else f"[{t.ip}]"
    return f"meta l4proto {p.protocol} dnat {_ip(p.family)} to {dest}:{t.port}"


def _base(kind: str, hook: str, priority: int) -> str:
    return f"type {kind} hook {hook} priority {priority}; policy accept;"


def _filter_base_chains() -> list[Chain]:
    fw, svc, nodeport, cluster = (f"ct state new jump {c}" for c in (
        "firewall-check", "service-endpoints-check", "nodeport-endpoints-check", "cluster-ips-check"))
    health = "meta l4proto tcp th dport @health-check-nodeports accept"
    return [
        Chain("filter-prerouting", (fw,), _base("filter", "prerouting", FILTER_PRIORITY)),
        Chain("filter-input", (health, nodeport, svc), _base("filter", "input", FILTER_PRIORITY)),
        Chain("filter-forward", (svc, cluster), _base("filter", "forward", FILTER_PRIORITY)),
        Chain("filter-output", (fw,), _base("filter", "output", FILTER_PRIORITY)),
        Chain("filter-output-post-dnat", (svc, cluster), _base("filter", "output", POST_DNAT_PRIORITY)),
        Chain("nat-postrouting", ("jump masquerading",), _base("nat", "postrouting", SNAT_PRIORITY)),
    ]


def _nodeport_match(model: ProxyModel, family: int) -> str:
    """Local destinations that accept node ports: never loopback, maybe only some CIDRs."""
    ip = _ip(family)
    loopback = "127.0.0.0/8" if family == 4 else "::1"
    cidrs = of_family(model.nodeport_cidrs, family)
    only = f" {ip} daddr {_set_expr(cidrs)}" if cidrs else ""
    return f"{ip} daddr != {loopback}{only} fib daddr type local"  # the family first: no route lookup for the other


FAMILIES = (4, 6)
DISPATCH = "meta l4proto . th dport vmap"


def _filter_chains(model: ProxyModel) -> list[Chain]:
    mark = f"{model.config.masquerade_mark:#x}"
    return [
        Chain("firewall-check", tuple(f"{_ip(f)} daddr . {DISPATCH} @firewall-ips-{_v(f)}" for f in FAMILIES)),
        Chain("service-endpoints-check",
              tuple(f"{_ip(f)} daddr . {DISPATCH} @no-endpoint-services-{_v(f)}" for f in FAMILIES)),
        Chain("nodeport-endpoints-check",
              tuple(f"{_nodeport_match(model, f)} {DISPATCH} @no-endpoint-nodeports-{_v(f)}" for f in FAMILIES)),
        Chain("cluster-ips-check", (
            *(f"{_ip(f)} daddr @cluster-ips-{_v(f)} {REJECT}" for f in FAMILIES),
            *(f"{_ip(f)} daddr {_set_expr(cidrs)} drop" for f in FAMILIES
              if (cidrs := of_family(model.config.service_cidrs, f))),
        )),
        Chain("reject-chain", ("meta l4proto tcp reject with tcp reset",
                               "reject with icmpx admin-prohibited")),
        Chain("masquerading", (
            f"meta mark & {mark} == 0 return", f"meta mark set meta mark xor {mark}", "masquerade fully-random")),
    ]


def _nat_chains(model: ProxyModel, filled: set[str]) -> list[Chain]:
    """The fixed chains of every shard: dispatch to its service ports, and the masquerade mark. Every new
    connection of the node passes each shard's base chains, so a lookup is there only while its set or
    map (`filled`) has elements."""
    return [
        Chain("nat-prerouting", ("jump services",), _base("nat", "prerouting", DNAT_PRIORITY)),
        Chain("nat-output", ("jump services",), _base("nat", "output", DNAT_PRIORITY)),
        # before `masquerading` (main table, SNAT_PRIORITY) reads the mark
        Chain("hairpin", tuple(f"ct status dnat {_ip(f)} saddr . {_ip(f)} daddr @{HAIRPIN[f]} {MASQ}"
                               for f in FAMILIES if HAIRPIN[f] in filled),
              _base("nat", "postrouting", SNAT_PRIORITY - 1)),
        Chain("services", (
            *(f"{_ip(f)} daddr . {DISPATCH} @service-ips-{_v(f)}" for f in FAMILIES
              if f"service-ips-{_v(f)}" in filled),
            *(f"{_nodeport_match(model, f)} {DISPATCH} @service-nodeports-{_v(f)}" for f in FAMILIES
              if f"service-nodeports-{_v(f)}" in filled),
        )),
        Chain("mark-for-masquerade", (f"meta mark set meta mark or {model.config.masquerade_mark:#x}",)),
    ]


def _masquerade_internal(model: ProxyModel, family: int) -> list[str]:
    """What marks ClusterIP traffic for SNAT: all of it with masqueradeAll, else what comes from outside the
    pod CIDRs."""
    if model.config.masquerade_all:
        return [MASQ]
    cidrs = of_family(model.local_cidrs, family)
    return [f"{_ip(family)} saddr != {_set_expr(cidrs)} {MASQ}"] if cidrs else []


Shared = tuple[str, str, int, int]  # a shared chain: kind, protocol, family, number of endpoints


def _shared_name(kind: str, protocol: str, family: int, n: int) -> str:
    return f"{kind}-{protocol}{family}-{n}"


def _data_map_name(kind: str, protocol: str, family: int) -> str:
    """The endpoint map a pick chain reads (for an entry kind, the map of the pick chain it goes to)."""
    return f"{PICK_MAPS[ENTRIES.get(kind, kind)]}-{protocol}-{_v(family)}"


def _frontend(kind: str, protocol: str, family: int) -> str:
    """What a packet's frontend is looked up by: `daddr . dport`, or `dport` for node ports."""
    return f"{protocol} dport" if "nodeport" in kind else f"{_ip(family)} daddr . {protocol} dport"


def _shared_chains(model: ProxyModel, used: set[Shared]) -> list[Chain]:
    """The shard's chains shared by every port of a protocol with as many endpoints: an entry chain per
    kind of traffic (`cluster`: ClusterIP, `external`: external addresses and `nodeport` under the Cluster
    policy) and the `pick` chains that choose one of the n endpoints at random, equal weight, by one
    lookup of the frontend and a random index in an endpoint map, and DNAT to it."""
    needed = used | {(ENTRIES[k], proto, f, n) for k, proto, f, n in used if k in ENTRIES}
    picks = list(PICK_MAPS)

    def order(u: Shared) -> tuple[object, ...]:  # each pick chain after the entry chains that go to it
        return (picks.index(ENTRIES.get(u[0], u[0])), u[0] not in ENTRIES, *u)

    chains = []
    for kind, proto, f, n in sorted(needed, key=order):
        ip, rules = _ip(f), []
        if kind in ENTRIES:
            rules += _masquerade_internal(model, f) if kind == "cluster" else [MASQ]
            rules.append(f"goto {_shared_name(ENTRIES[kind], proto, f, n)}")
        else:
            rules.append(f"meta l4proto {proto} dnat {ip} to {_frontend(kind, proto, f)} . numgen random mod {n} "
                         f"map @{_data_map_name(kind, proto, f)}")
        chains.append(Chain(_shared_name(kind, proto, f, n), tuple(rules)))
    return chains


NAT_MAPS = tuple(f"{m}-{_v(f)}" for m in ("service-ips", "service-nodeports") for f in FAMILIES)
FILTER_MAPS = tuple(f"{m}-{_v(f)}" for m in ("no-endpoint-services", "no-endpoint-nodeports", "firewall-ips")
                    for f in FAMILIES)
HAIRPIN = {f: f"hairpin-{_v(f)}" for f in FAMILIES}  # sets of `endpoint . endpoint`, elements gathered like maps'
# The shared chains: a pick chain reads one endpoint map; an entry chain marks for SNAT and goes to a pick chain.
PICK_MAPS = {"pick": "endpoints", "local-pick": "local-endpoints", "nodeport-pick": "nodeport-endpoints",
             "local-nodeport-pick": "nodeport-local-endpoints"}
ENTRIES = {"cluster": "pick", "external": "pick", "nodeport": "nodeport-pick"}
PROTOCOLS = ("tcp", "udp", "sctp")


def shard_of(namespace: str, name: str) -> int:
    """The shard table of a Service's ports: a fixed hash of its name, so all its ports in both families
    share one and never move (and a full build can finish a shard's Services before the next shard's)."""
    return zlib.crc32(f"{namespace}/{name}".encode()) % SHARDS


def shard_name(shard: int) -> str:
    return f"{TABLE}-{shard}"


@dataclass(frozen=True)
class Part:
    """What one service port adds to one table: chains, elements of the table's shared maps and sets
    (name, its (key, verdict or "")), and sets of its own (ClientIP affinity)."""

    chains: tuple[Chain, ...] = ()
    elements: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    sets: tuple[NftSet, ...] = ()
    shared: frozenset[Shared] = frozenset()  # the shard's shared chains it uses


NOTHING = Part()


@dataclass(frozen=True)
class PortRules:
    """The rules of one service port: in its shard table (`nat`) and in the main table (`filter`)."""

    port: ProxiedPort
    shard: int
    nat: Part
    filter: Part


class RenderCache:
    """What the last `build_ruleset` made, reused while the model holds the very same objects (the model
    cache keeps unchanged ports as they were): a sync renders only the ports that changed, and rebuilds
    only the tables whose ports' parts changed. A re-rendered port that gives a table what it gave before
    keeps its old `Part` object, so that table stays as it was. Dropped when what every port's rules
    depend on (pod CIDRs, masqueradeAll, nodePortAddresses, the mark, serviceCIDRs) changes.

    When the model has as many ports as last time and only a few are new objects, each in the place of
    a port of the same name (an endpoint change), the build looks only at those: no pass in Python over
    every port."""

    def __init__(self) -> None:
        self.context: tuple[object, ...] | None = None
        self.ports: tuple[ProxiedPort, ...] = ()  # the model's ports at the last build
        self.rules: list[PortRules] = []  # their rules, in the same order
        self.members: list[list[int]] | None = None  # per shard, the indices in `rules` of its ports (on demand)
        self.by_path: dict[tuple[int, str], PortRules] = {}  # (family, path) -> the same rules
        self.tables: dict[str, tuple[tuple[object, ...], Table]] = {}  # name -> (its inputs, the table)


class _Builder:
    def __init__(self, model: ProxyModel) -> None:
        self.model = model
        self.chains: list[Chain] = []  # in the port's shard
        self.fw_chains: list[Chain] = []  # in the main table: loadBalancerSourceRanges
        self.own_sets: list[NftSet] = []
        self.shared: set[Shared] = set()
        # map or set name -> elements, in the order they are declared
        self.maps: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)

    def rules(self, p: ProxiedPort) -> PortRules:
        """The rules of one port (the builder must be fresh)."""
        self.port(p)

        def part(chains: list[Chain], maps: frozenset[str], sets: tuple[NftSet, ...] = (),
                 shared: frozenset[Shared] = frozenset()) -> Part:
            elements = tuple((m, tuple(els)) for m, els in self.maps.items() if els and m in maps)
            made = Part(tuple(chains), elements, sets, shared)
            return NOTHING if made == NOTHING else made

        nat = part(self.chains, NAT_SETS, tuple(self.own_sets), frozenset(self.shared))
        return PortRules(p, shard_of(p.namespace, p.name), nat, part(self.fw_chains, frozenset(FILTER_MAPS)))

    def policy_chain(self, kind: str, p: ProxiedPort, endpoints: tuple[Target, ...], internal: bool) -> None:
        """ClientIP affinity only: endpoint selection through the affinity sets and `ep` chains (`kind` svc or
        local); the internal chain also marks ClusterIP traffic that needs SNAT."""
        ip, rules = _ip(p.family), []
        if internal:
            match = f"{ip} daddr {p.cluster_ip} {p.protocol} dport {p.port}"
            rules += [f"{match} {r}" for r in _masquerade_internal(self.model, p.family)]
        rules += [f"{ip} saddr @{names.nft_endpoint('aff', p, t)} goto {names.nft_endpoint('ep', p, t)}"
                  for t in endpoints]
        picks = [f"goto {names.nft_endpoint('ep', p, t)}" for t in endpoints]
        # Endpoint i is taken with probability 1/(n-i) when reached: equal weight overall.
        n = len(picks)
        rules += [f"numgen random mod {n - i} == 0 {pick}" for i, pick in enumerate(picks[:-1])]
        rules.append(picks[-1])
        self.chains.append(Chain(names.nft_port(kind, p), tuple(rules)))

    def external_chain(self, p: ProxiedPort, name: str, cluster: str, local: str | None) -> None:
        """External traffic under externalTrafficPolicy Local: pod and node traffic short-circuits to
        `cluster`, the rest goes to `local` (None when this node has no endpoint)."""
        rules = []
        cidrs = of_family(self.model.local_cidrs, p.family)
        if cidrs:
            rules.append(f'{_ip(p.family)} saddr {_set_expr(cidrs)} {cluster} comment "short-circuit pod traffic"')
        rules += [f'fib saddr type local {MASQ} comment "masquerade local traffic"',
                  f'fib saddr type local {cluster} comment "short-circuit local traffic"']
        if local:
            rules.append(local)
        self.chains.append(Chain(name, tuple(rules)))

    def endpoints(self, p: ProxiedPort) -> None:
        """Hairpin pairs of the local endpoints; with ClientIP affinity, a chain and a set per endpoint."""
        ip = _ip(p.family)
        # only a pod of this node can reach itself through this node's rules
        self.maps[HAIRPIN[p.family]] += [(f"{t.ip} . {t.ip}", "") for t in p.local_endpoints or p.cluster_endpoints
                                         if t.local]
        for t in p.reachable_endpoints if p.affinity_seconds else ():
            aff = names.nft_endpoint("aff", p, t)
            self.own_sets.append(NftSet(aff, f"ipv{p.family}_addr", ("dynamic", "timeout"), p.affinity_seconds))
            rules = (f"update @{aff} {{ {ip} saddr }}", _dnat(p, t))
            self.chains.append(Chain(names.nft_endpoint("ep", p, t), rules))

    def chained(self, p: ProxiedPort) -> tuple[str, str]:
        """ClientIP affinity: the port's own chains. The verdicts for its ClusterIP and external traffic."""
        if p.cluster_endpoints:
            self.policy_chain("svc", p, p.cluster_endpoints, internal=not p.internal_local)
        if p.local_endpoints:
            self.policy_chain("local", p, p.local_endpoints, internal=p.internal_local)
        svc, ext = f"goto {names.nft_port('svc', p)}", f"goto {names.nft_port('ext', p)}"
        if p.uses_external_chain:
            if p.external_local:
                local = f"goto {names.nft_port('local', p)}" if p.local_endpoints else None
                self.external_chain(p, names.nft_port("ext", p), svc, local)
            else:
                self.chains.append(Chain(names.nft_port("ext", p), (MASQ, svc)))
        return f"goto {names.nft_port('local' if p.internal_local else 'svc', p)}", ext

    def pick(self, kind: str, p: ProxiedPort, keys: list[str], endpoints: tuple[Target, ...]) -> str:
        """The endpoints of some frontends as elements of a shared endpoint map, and the verdict that picks
        one of them through the shard's shared chain for this kind and number of endpoints."""
        f, proto, n = p.family, p.protocol, len(endpoints)
        self.maps[_data_map_name(kind, proto, f)] += [(f"{key} . {i}", f"{t.ip} . {t.port}")
                                                      for key in keys for i, t in enumerate(endpoints)]
        self.shared.add((kind, proto, f, n))
        return f"goto {_shared_name(kind, proto, f, n)}"

    def mapped(self, p: ProxiedPort) -> tuple[str, str, str]:
        """No affinity: the port's endpoints as map elements, picked by the shard's shared chains; a chain of
        its own only for externalTrafficPolicy Local. The verdicts for its ClusterIP, external address and
        node port traffic."""
        internal = ""
        if p.internal_endpoints:
            internal = self.pick("cluster", p, [f"{p.cluster_ip} . {p.port}"], p.internal_endpoints)
        if not p.uses_external_chain:
            return internal, "", ""
        addresses = [f"{ip} . {p.port}" for ip in p.external_ips + p.lb_ips]
        nodeport = [str(p.node_port)] if p.node_port else []
        if not p.external_local:
            return (internal, self.pick("external", p, addresses, p.cluster_endpoints) if addresses else "",
                    self.pick("nodeport", p, nodeport, p.cluster_endpoints) if nodeport else "")
        verdicts = []
        for kind, name, keys in (("pick", "ext", addresses), ("nodeport-pick", "npext", nodeport)):
            if keys:
                cluster = self.pick(kind, p, keys, p.cluster_endpoints)
                local = self.pick(f"local-{kind}", p, keys, p.local_endpoints) if p.local_endpoints else None
                self.external_chain(p, names.nft_port(name, p), cluster, local)
            verdicts.append(f"goto {names.nft_port(name, p)}" if keys else "")
        return internal, verdicts[0], verdicts[1]

    def port(self, p: ProxiedPort) -> None:
        v, proto = _v(p.family), p.protocol
        none_verdict = "drop" if p.has_endpoints else REJECT
        if p.affinity_seconds:
            internal, ext = self.chained(p)
            nodeport = ext
        else:
            internal, ext, nodeport = self.mapped(p)
        if p.firewalled:
            ranges = p.source_ranges or ()
            rule = f"{_ip(p.family)} saddr != {_set_expr(ranges)} drop" if ranges else "drop"
            self.fw_chains.append(Chain(names.nft_port("fw", p), (rule,)))
        self.endpoints(p)

        cluster_key = f"{p.cluster_ip} . {proto} . {p.port}"
        if p.internal_endpoints:
            self.maps[f"service-ips-{v}"].append((cluster_key, internal))
        else:
            self.maps[f"no-endpoint-services-{v}"].append((cluster_key, none_verdict))
        for ip in p.external_ips + p.lb_ips:
            key = f"{ip} . {proto} . {p.port}"
            if p.uses_external_chain:
                self.maps[f"service-ips-{v}"].append((key, ext))
            if not p.external_endpoints:
                self.maps[f"no-endpoint-services-{v}"].append((key, none_verdict))
            if p.firewalled and ip in p.lb_ips:
                self.maps[f"firewall-ips-{v}"].append((key, f"goto {names.nft_port('fw', p)}"))
        if p.node_port:
            key = f"{proto} . {p.node_port}"
            if p.uses_external_chain:
                self.maps[f"service-nodeports-{v}"].append((key, nodeport))
            if not p.external_endpoints:
                self.maps[f"no-endpoint-nodeports-{v}"].append((key, none_verdict))


def _table(name: str, comment: str, sets: list[NftSet], grouped: list[NftSet], static: list[Chain],
           parts: list[Part]) -> Table:
    """One table: its fixed sets and chains, the sets that the ports' parts fill, then the parts' chains
    and own sets in order (a group each)."""
    elements: dict[str, list[tuple[str, str]]] = {s.name: [] for s in grouped}
    for part in parts:
        for m, els in part.elements:
            elements[m].extend(els)
    shared = frozenset(elements).intersection(HAIRPIN.values())  # an endpoint of several ports is there once
    filled = [replace(s, elements=tuple(dict.fromkeys(elements[s.name]) if s.name in shared else elements[s.name]))
              for s in grouped]
    own = [s for part in parts for s in part.sets]
    groups = (tuple(static), *(part.chains for part in parts))
    chains = tuple(static) + tuple(c for part in parts for c in part.chains)
    return Table(FAMILY, name, comment, (*sets, *filled, *own), chains, groups, tuple(part.elements for part in parts),
                 frozenset(elements), shared)


def _map(name: str) -> NftSet:
    key = "inet_proto . inet_service"
    if "nodeports" not in name:
        key = f"ipv{name[-1]}_addr . {key}"
    return NftSet(name, f"{key} : verdict")


def _data_map(kind: str, protocol: str, family: int) -> NftSet:
    """An endpoint map: frontend . index -> endpoint address . port."""
    key = f"{_frontend(kind, protocol, family)} . numgen random mod 1"
    value = f"{_ip(family)} daddr . {protocol} dport"
    return NftSet(_data_map_name(kind, protocol, family), f"{key} : {value}", typeof=True)


# What every shard declares and its ports fill, whatever the model (built once): dispatch maps, hairpin
# sets, and one endpoint map per pick kind, protocol and family (nft 1.0.6 cannot add a rule that names
# an existing map whose `typeof` holds `th dport`: it mistakes the protocol; so the port field comes
# from the protocol's own header).
SHARD_SETS = (*(_map(m) for m in NAT_MAPS),
              *(NftSet(name, f"ipv{f}_addr . ipv{f}_addr", comment="endpoint . endpoint: hairpin traffic")
                for f, name in HAIRPIN.items()),
              *(_data_map(kind, proto, f) for kind in PICK_MAPS for proto in PROTOCOLS for f in FAMILIES))
NAT_SETS = frozenset(s.name for s in SHARD_SETS)


def _main_table(model: ProxyModel, parts: list[Part]) -> Table:
    sets = [NftSet(f"cluster-ips-{_v(f)}", f"ipv{f}_addr", comment="ClusterIPs of proxied Services",
                   elements=tuple((ip, "") for ip in of_family(model.cluster_ips, f))) for f in FAMILIES]
    health = sorted({h.node_port for h in model.health_checks})
    sets.append(NftSet("health-check-nodeports", "inet_service", comment="healthCheckNodePorts",
                       elements=tuple((str(n), "") for n in health)))
    return _table(TABLE, "knet service proxy: filters and masquerade; generated, do not edit", sets,
                  [_map(m) for m in FILTER_MAPS], _filter_base_chains() + _filter_chains(model), parts)


def _shard_table(model: ProxyModel, shard: int, parts: list[Part]) -> Table:
    return _table(shard_name(shard), f"knet service proxy: DNAT, shard {shard} of {SHARDS}; generated, do not edit",
                  [], list(SHARD_SETS),
                  _nat_chains(model, {m for part in parts for m, _ in part.elements})
                  + _shared_chains(model, {u for part in parts for u in part.shared}), parts)


def _cached(cache: RenderCache, name: str, inputs: tuple[object, ...], build: Callable[[], Table]) -> Table:
    """The table built last time when its inputs are the same objects (or equal), else a new one."""
    old = cache.tables.get(name)
    if old is not None and len(old[0]) == len(inputs) and all(
            a is b or a == b for a, b in zip(old[0], inputs, strict=True)):
        return old[1]
    table = build()
    cache.tables[name] = (inputs, table)
    return table


FEW = 64  # at most this many changed ports take the path that looks only at them


def _render(model: ProxyModel, p: ProxiedPort, old: PortRules | None) -> PortRules:
    """A port's rules; a part equal to the old one's stays that object (its table need not be rebuilt)."""
    rules = _Builder(model).rules(p)
    if old is None:
        return rules
    return replace(rules, nat=old.nat if old.nat == rules.nat else rules.nat,
                   filter=old.filter if old.filter == rules.filter else rules.filter)


def _changed_in_place(cache: RenderCache, ports: tuple[ProxiedPort, ...]) -> list[int] | None:
    """The positions of the ports that are new objects, when they are few and each replaces a port of
    the same name; None otherwise."""
    old = cache.ports
    if not old or len(old) != len(ports):
        return None
    changed = list(itertools.compress(range(len(ports)), map(operator.is_not, old, ports)))
    if len(changed) > FEW or any((ports[i].family, ports[i].path) != (old[i].family, old[i].path) for i in changed):
        return None
    return changed


def _main(cache: RenderCache, model: ProxyModel) -> Table:
    filters = [r.filter for r in cache.rules]
    return _cached(cache, TABLE, (model.cluster_ips, model.health_checks, *filters),
                   lambda: _main_table(model, filters))


def _shard(cache: RenderCache, model: ProxyModel, shard: int, parts: list[Part]) -> Table | None:
    """Keep the shard's table in the cache (and return it), or none when no port gives it rules."""
    if parts:
        return _cached(cache, shard_name(shard), tuple(parts), lambda: _shard_table(model, shard, parts))
    cache.tables.pop(shard_name(shard), None)
    return None


def _update(cache: RenderCache, model: ProxyModel, changed: list[int]) -> None:
    """Re-render the changed ports in place; rebuild only the tables they change."""
    shards, filters = set(), False
    for i in changed:
        p, old = model.ports[i], cache.rules[i]
        cache.rules[i] = cache.by_path[(p.family, p.path)] = rules = _render(model, p, old)
        if rules.nat is not old.nat:
            shards.add(rules.shard)
        filters = filters or rules.filter is not old.filter
    cache.ports = model.ports
    main = cache.tables[TABLE][0]
    if filters or main[0] != model.cluster_ips or main[1] != model.health_checks:
        _main(cache, model)
    if shards and cache.members is None:  # derived once per full build, when an update first needs it
        cache.members = [[] for _ in range(SHARDS)]
        for i, rules in enumerate(cache.rules):
            cache.members[rules.shard].append(i)
    for shard in shards:
        # a port changed in place has the name, hence the shard, of the one it replaces: the members stand
        nats = (cache.rules[i].nat for i in cache.members[shard])
        _shard(cache, model, shard, [nat for nat in nats if nat is not NOTHING])


def _context(model: ProxyModel) -> tuple[object, ...]:
    """What every port's rules depend on besides the port: when it changes, no cached rule is reused."""
    return model.local_cidrs, model.nodeport_cidrs, model.config


class FullBuild:
    """Every port looked at, shard by shard: those that are the same objects as last time keep their
    rules. `shard` takes each shard's ports in turn and hands its table to `emit` (a full sync streams
    it to nft, which parses it while the next shard is built); `finish` builds the shards not given yet
    from the whole model, then the main table, which needs every port's filter part."""

    def __init__(self, cache: RenderCache, emit: Callable[[str], None] | None = None) -> None:
        self.cache, self.emit = cache, emit
        self.old: dict[int, PortRules] = {}  # id(port) -> its rules of the last build, from the first shard on
        self.found: dict[int, PortRules] = {}  # id(port) -> its rules
        self.sent: set[str] = set()
        self.next = 0  # the next shard expected

    def out(self, table: Table, absent: bool = False) -> None:
        if self.emit:
            self.emit(table.delete() if absent else table.full())
        self.sent.add(table.name)

    def shard(self, model: ProxyModel, shard: int, ports: Iterable[ProxiedPort]) -> None:
        """Shard `shard`'s ports in model order; `model` needs only what every port's rules depend on."""
        assert shard == self.next, f"shard {shard} given out of order (expected {self.next})"
        cache, context = self.cache, _context(model)
        if shard == 0:
            if cache.context != context:
                cache.context, cache.ports, cache.rules, cache.by_path, cache.tables = context, (), [], {}, {}
            self.old = {id(r.port): r for r in cache.rules}
        parts = []
        for p in ports:
            rules = self.old.pop(id(p), None)
            if rules is None or rules.port is not p:
                key = (p.family, p.path)
                cache.by_path[key] = rules = _render(model, p, cache.by_path.get(key))
            self.found[id(p)] = rules
            if rules.nat is not NOTHING:  # a port without endpoints has no DNAT rules: no table for it alone
                parts.append(rules.nat)
        if (table := _shard(cache, model, shard, parts)) is not None:
            self.out(table)
        self.next += 1

    def finish(self, model: ProxyModel) -> Ruleset:
        by_shard: list[list[ProxiedPort]] = [[] for _ in range(SHARDS)]
        if self.next < SHARDS:
            for p in model.ports:
                by_shard[shard_of(p.namespace, p.name)].append(p)
        for shard in range(self.next, SHARDS):
            self.shard(model, shard, by_shard[shard])
        cache = self.cache
        for rules in self.old.values():  # ports gone
            if cache.by_path.get(key := (rules.port.family, rules.port.path)) is rules:
                del cache.by_path[key]
        cache.ports, cache.rules, cache.members = model.ports, [self.found[id(p)] for p in model.ports], None
        self.out(_main(cache, model))
        return _ruleset(cache, self.out, self.sent)


def _ruleset(cache: RenderCache, out: Callable[..., None], sent: set[str]) -> Ruleset:
    """The cache's tables as a ruleset; those not handed to `out` yet (all but the rebuilt ones), then the
    shards without ports, as deletions."""
    names = [shard_name(i) for i in range(SHARDS)]
    rules = Ruleset((cache.tables[TABLE][1], *(cache.tables[n][1] for n in names if n in cache.tables)),
                    tuple(Table(FAMILY, n, "", (), ()) for n in names if n not in cache.tables))
    for table in rules.tables:
        if table.name not in sent:
            out(table)
    for table in rules.absent:
        out(table, absent=True)
    return rules


def build_ruleset(model: ProxyModel, cache: RenderCache | None = None,
                  emit: Callable[[str], None] | None = None) -> Ruleset:
    """All our tables for this model (both renderings below derive from it). With a `cache` (the agent
    keeps one), ports that are the same objects as in the last build reuse their rules, and tables whose
    inputs are unchanged are the same objects (so `diff` skips them). `emit`, when given, receives the
    full transaction (`Ruleset.full`) table by table, each as soon as it is built."""
    cache = cache or RenderCache()
    build = FullBuild(cache, emit)
    changed = _changed_in_place(cache, model.ports) if cache.context == _context(model) else None
    if changed is None:
        return build.finish(model)
    _update(cache, model, changed)
    return _ruleset(cache, build.out, build.sent)


def render_full(model: ProxyModel) -> str:
    """`nft -f` input that replaces our tables atomically: for start-up, failures and periodic resyncs."""
    return build_ruleset(model).full()


def render_incremental(old: ProxyModel, new: ProxyModel) -> str:
    """`nft -f` input turning the table of `old` (as last applied) into that of `new`; "" if unchanged."""
    return diff(build_ruleset(old), build_ruleset(new))


def render_cleanup() -> str:
    """`nft -f` input removing our tables (e.g. when switching to iptables mode)."""
    return Ruleset(tuple(Table(FAMILY, name, "", (), ()) for name in (TABLE, *map(shard_name, range(SHARDS))))).delete()
