"""Proxy model -> one nftables table, `table inet knet-proxy`, with IPv4 and IPv6 side by side.

Why one inet table: one transaction programs both families, and one name is all the agent must
watch. Every per-family object carries its family: `service-ips-v4`, `svc6-...`.

Layout (after kube-proxy's nftables mode, see its pkg/proxy/nftables/README.md):
- Dispatch is O(1): `services` (from nat prerouting and output, priority dstnat) looks up
  `daddr . l4proto . dport` in the verdict maps `service-ips-v4/-v6` (ClusterIPs, externalIPs and
  LB IPs) and, for local non-loopback destinations (optionally within `nodePortAddresses`),
  `l4proto . dport` in `service-nodeports-v4/-v6`.
- Per service port: `svc` (Cluster-policy endpoints) and `local` (Local-policy endpoints) chains pick
  an endpoint and DNAT to it, rule i matching with probability 1/(N-i) (`numgen random mod N-i == 0
  dnat ...`, the last rule unconditionally): equal weight, and neither a chain nor a set per endpoint.
  Named sets are why: the kernel finds a set by name by walking the table's list of sets, once per
  set created and per rule or element naming one, so a set per Service makes a full sync quadratic
  (10k Services: 11 s of `nft -f`, 85% of it in those walks; 3 s without them); chains are found in a
  hash table. An anonymous map per rule (kube-proxy's way) is quadratic too, and one shared map keyed
  by `numgen ... offset` is worse: binding a map walks all its elements, once per chain using it. With
  ClientIP affinity the chain first checks the affinity sets (`ip saddr @aff... goto ep...`) and picks
  an `ep` chain the same way; `ep` chains refresh the affinity set (`update @aff... { ip saddr }`,
  timeout = timeoutSeconds) and DNAT. `ext` chains handle external traffic (masquerade, or for
  externalTrafficPolicy Local the short-circuit of pod and node traffic); `fw` chains drop sources
  outside loadBalancerSourceRanges.
- Masquerade: rules jump to `mark-for-masquerade` (sets `masqueradeBit`); `masquerading` (nat
  postrouting) masquerades marked packets. Marked: ClusterIP traffic from outside the pod CIDRs (or
  all of it with masqueradeAll), external traffic unless externalTrafficPolicy is Local, and, in
  `masquerading` itself, hairpin traffic (an endpoint reaching itself: after DNAT source and
  destination are the same address, looked up in `hairpin-v4/-v6`, the set of `ep . ep` pairs of the
  node's own endpoints, the only ones a pod can reach itself at through this node's rules).
- Filtering (type filter): `firewall-check` (prerouting and output at -110, before DNAT, so it sees
  the LB address) applies `firewall-ips-*`. `service-endpoints-check` (input, forward, and output
  at -90, after DNAT, so host traffic short-circuited by an `ext` chain is not caught) applies
  `no-endpoint-services-*`, and `nodeport-endpoints-check` (input) `no-endpoint-nodeports-*`: reject
  (TCP reset, else ICMP admin-prohibited) when a Service has no endpoints, drop when a Local policy
  has no local ones. `cluster-ips-check` (forward, output at -90) rejects traffic to a ClusterIP port
  that no rule translated and drops traffic to unallocated addresses of serviceCIDRs.
  healthCheckNodePorts are accepted first in input (this only keeps our own checks off them).
"""

from __future__ import annotations

from dataclasses import dataclass

from operators.proxy import names
from operators.proxy.model import ProxiedPort, ProxyModel, Target, of_family
from operators.proxy.nft_table import Chain, NftSet, Table, diff

TABLE = "knet-proxy"
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


def _base_chains() -> list[Chain]:
    fw, svc, nodeport, cluster = (f"ct state new jump {c}" for c in (
        "firewall-check", "service-endpoints-check", "nodeport-endpoints-check", "cluster-ips-check"))
    health = "meta l4proto tcp th dport @health-check-nodeports accept"
    return [
        Chain("filter-prerouting", (fw,), _base("filter", "prerouting", FILTER_PRIORITY)),
        Chain("filter-input", (health, nodeport, svc), _base("filter", "input", FILTER_PRIORITY)),
        Chain("filter-forward", (svc, cluster), _base("filter", "forward", FILTER_PRIORITY)),
        Chain("filter-output", (fw,), _base("filter", "output", FILTER_PRIORITY)),
        Chain("filter-output-post-dnat", (svc, cluster), _base("filter", "output", POST_DNAT_PRIORITY)),
        Chain("nat-prerouting", ("jump services",), _base("nat", "prerouting", DNAT_PRIORITY)),
        Chain("nat-output", ("jump services",), _base("nat", "output", DNAT_PRIORITY)),
        Chain("nat-postrouting", ("jump masquerading",), _base("nat", "postrouting", SNAT_PRIORITY)),
    ]


def _nodeport_match(model: ProxyModel, family: int) -> str:
    """Local destinations that accept node ports: never loopback, maybe only some CIDRs."""
    ip = _ip(family)
    loopback = "127.0.0.0/8" if family == 4 else "::1"
    cidrs = of_family(model.nodeport_cidrs, family)
    only = f" {ip} daddr {_set_expr(cidrs)}" if cidrs else ""
    return f"fib daddr type local {ip} daddr != {loopback}{only}"


def _static_chains(model: ProxyModel) -> list[Chain]:
    mark = f"{model.config.masquerade_mark:#x}"
    dispatch = "meta l4proto . th dport vmap"
    fams = (4, 6)
    return [
        Chain("firewall-check", tuple(f"{_ip(f)} daddr . {dispatch} @firewall-ips-{_v(f)}" for f in fams)),
        Chain("service-endpoints-check",
              tuple(f"{_ip(f)} daddr . {dispatch} @no-endpoint-services-{_v(f)}" for f in fams)),
        Chain("nodeport-endpoints-check",
              tuple(f"{_nodeport_match(model, f)} {dispatch} @no-endpoint-nodeports-{_v(f)}" for f in fams)),
        Chain("cluster-ips-check", (
            *(f"{_ip(f)} daddr @cluster-ips-{_v(f)} {REJECT}" for f in fams),
            *(f"{_ip(f)} daddr {_set_expr(cidrs)} drop" for f in fams
              if (cidrs := of_family(model.config.service_cidrs, f))),
        )),
        Chain("reject-chain", ("meta l4proto tcp reject with tcp reset",
                               "reject with icmpx admin-prohibited")),
        Chain("services", (
            *(f"{_ip(f)} daddr . {dispatch} @service-ips-{_v(f)}" for f in fams),
            *(f"{_nodeport_match(model, f)} {dispatch} @service-nodeports-{_v(f)}" for f in fams),
        )),
        Chain("mark-for-masquerade", (f"meta mark set meta mark or {mark}",)),
        Chain("masquerading", (
            *(f"ct status dnat {_ip(f)} saddr . {_ip(f)} daddr @{HAIRPIN[f]} {MASQ}" for f in fams),
            f"meta mark & {mark} == 0 return", f"meta mark set meta mark xor {mark}", "masquerade fully-random")),
    ]


MAPS = tuple(f"{m}-{_v(f)}" for m in ("service-ips", "service-nodeports", "no-endpoint-services",
                                       "no-endpoint-nodeports", "firewall-ips") for f in (4, 6))
HAIRPIN = {f: f"hairpin-{_v(f)}" for f in (4, 6)}  # sets of `endpoint . endpoint`, elements gathered like maps'


@dataclass(frozen=True)
class PortRules:
    """What one service port adds to the table: its chains, map elements and affinity sets."""

    port: ProxiedPort
    chains: tuple[Chain, ...]
    elements: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (shared map or set, its (key, verdict or ""))
    sets: tuple[NftSet, ...]  # the port's own: endpoint maps, affinity sets


class RenderCache:
    """The rules of each service port of the last `build_table`, reused while the model holds the very
    same `ProxiedPort` (the model cache keeps unchanged ports as they were): a sync renders only the
    ports that changed. Dropped when what every port's rules depend on (pod CIDRs, masqueradeAll) changes."""

    def __init__(self) -> None:
        self.context: tuple[object, ...] | None = None
        self.ports: dict[int, PortRules] = {}  # id(port) -> its rules (`rules.port` keeps the id alive)


class _Builder:
    def __init__(self, model: ProxyModel) -> None:
        self.model = model
        self.chains: list[Chain] = []
        self.own_sets: list[NftSet] = []
        # map or set name -> elements, in the order they are declared
        self.maps: dict[str, list[tuple[str, str]]] = {m: [] for m in (*MAPS, *HAIRPIN.values())}

    def rules(self, p: ProxiedPort) -> PortRules:
        """The rules of one port (the builder must be fresh)."""
        self.port(p)
        return PortRules(p, tuple(self.chains), tuple((m, tuple(els)) for m, els in self.maps.items() if els),
                         tuple(self.own_sets))

    def policy_chain(self, kind: str, p: ProxiedPort, endpoints: tuple[Target, ...], internal: bool) -> None:
        """Endpoint selection and DNAT (`kind` svc or local); the internal chain also marks ClusterIP traffic
        that needs SNAT."""
        ip, rules = _ip(p.family), []
        if internal:
            cidrs = of_family(self.model.local_cidrs, p.family)
            match = f"{ip} daddr {p.cluster_ip} {p.protocol} dport {p.port}"
            if self.model.config.masquerade_all:
                rules.append(f"{match} {MASQ}")
            elif cidrs:
                rules.append(f"{match} {ip} saddr != {_set_expr(cidrs)} {MASQ}")
        if p.affinity_seconds:
            rules += [f"{ip} saddr @{names.nft_endpoint('aff', p, t)} goto {names.nft_endpoint('ep', p, t)}"
                      for t in endpoints]
            picks = [f"goto {names.nft_endpoint('ep', p, t)}" for t in endpoints]
        else:  # no chain and no set per endpoint: sets are found by name in a list, chains in a hash table
            picks = [_dnat(p, t) for t in endpoints]
        # Endpoint i is taken with probability 1/(n-i) when reached: equal weight overall.
        n = len(picks)
        rules += [f"numgen random mod {n - i} == 0 {pick}" for i, pick in enumerate(picks[:-1])]
        rules.append(picks[-1])
        self.chains.append(Chain(names.nft_port(kind, p), tuple(rules)))

    def external_chain(self, p: ProxiedPort) -> None:
        svc, rules = names.nft_port("svc", p), []
        if not p.external_local:
            rules += [MASQ, f"goto {svc}"]
        else:
            cidrs = of_family(self.model.local_cidrs, p.family)
            if cidrs:
                pods = f"{_ip(p.family)} saddr {_set_expr(cidrs)}"
                rules.append(f'{pods} goto {svc} comment "short-circuit pod traffic"')
            rules += [f'fib saddr type local {MASQ} comment "masquerade local traffic"',
                      f'fib saddr type local goto {svc} comment "short-circuit local traffic"']
            if p.local_endpoints:
                rules.append(f"goto {names.nft_port('local', p)}")
        self.chains.append(Chain(names.nft_port("ext", p), tuple(rules)))

    def endpoints(self, p: ProxiedPort) -> None:
        """Hairpin pairs of the local endpoints; with ClientIP affinity, a chain and a set per endpoint."""
        ip = _ip(p.family)
        for t in p.reachable_endpoints:
            if t.local:  # only a pod of this node can reach itself through this node's rules
                self.maps[HAIRPIN[p.family]].append((f"{t.ip} . {t.ip}", ""))
            if not p.affinity_seconds:
                continue
            aff = names.nft_endpoint("aff", p, t)
            self.own_sets.append(NftSet(aff, f"ipv{p.family}_addr", ("dynamic", "timeout"), p.affinity_seconds))
            rules = (f"update @{aff} {{ {ip} saddr }}", _dnat(p, t))
            self.chains.append(Chain(names.nft_endpoint("ep", p, t), rules))

    def port(self, p: ProxiedPort) -> None:
        v, proto = _v(p.family), p.protocol
        none_verdict = "drop" if p.has_endpoints else REJECT
        if p.cluster_endpoints:
            self.policy_chain("svc", p, p.cluster_endpoints, internal=not p.internal_local)
        if p.local_endpoints:
            self.policy_chain("local", p, p.local_endpoints, internal=p.internal_local)
        if p.uses_external_chain:
            self.external_chain(p)
        if p.firewalled:
            ranges = p.source_ranges or ()
            rule = f"{_ip(p.family)} saddr != {_set_expr(ranges)} drop" if ranges else "drop"
            self.chains.append(Chain(names.nft_port("fw", p), (rule,)))
        self.endpoints(p)

        cluster_key = f"{p.cluster_ip} . {proto} . {p.port}"
        if p.internal_endpoints:
            internal = names.nft_port("local" if p.internal_local else "svc", p)
            self.maps[f"service-ips-{v}"].append((cluster_key, f"goto {internal}"))
        else:
            self.maps[f"no-endpoint-services-{v}"].append((cluster_key, none_verdict))
        ext = f"goto {names.nft_port('ext', p)}"
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
                self.maps[f"service-nodeports-{v}"].append((key, ext))
            if not p.external_endpoints:
                self.maps[f"no-endpoint-nodeports-{v}"].append((key, none_verdict))

    def sets(self) -> list[NftSet]:
        model = self.model
        out = [NftSet(f"cluster-ips-{_v(f)}", f"ipv{f}_addr", comment="ClusterIPs of proxied Services",
                      elements=tuple((ip, "") for ip in of_family(model.cluster_ips, f))) for f in (4, 6)]
        health = sorted({h.node_port for h in model.health_checks})
        out.append(NftSet("health-check-nodeports", "inet_service", comment="healthCheckNodePorts",
                          elements=tuple((str(n), "") for n in health)))
        for name in MAPS:
            key = "inet_proto . inet_service"
            if "nodeports" not in name:
                key = f"ipv{name[-1]}_addr . {key}"
            out.append(NftSet(name, f"{key} : verdict", elements=tuple(self.maps[name])))
        for f, name in HAIRPIN.items():  # an endpoint of several Services is there once
            out.append(NftSet(name, f"ipv{f}_addr . ipv{f}_addr", comment="endpoint . endpoint: hairpin traffic",
                              elements=tuple(dict.fromkeys(self.maps[name]))))
        return out + self.own_sets


def build_table(model: ProxyModel, cache: RenderCache | None = None) -> Table:
    """The whole table for this model (both renderings below derive from it). With a `cache` (the agent
    keeps one), ports that are the same objects as in the last build reuse their rules."""
    cache = cache or RenderCache()
    context = (model.local_cidrs, model.config.masquerade_all)
    if cache.context != context:
        cache.context, cache.ports = context, {}
    rendered: dict[int, PortRules] = {}
    b = _Builder(model)
    for p in model.ports:
        rules = cache.ports.get(id(p))
        if rules is None or rules.port is not p:
            rules = _Builder(model).rules(p)
        rendered[id(p)] = rules
        b.chains += rules.chains
        b.own_sets += rules.sets
        for m, elements in rules.elements:
            b.maps[m].extend(elements)
    cache.ports = rendered
    static = tuple(_base_chains() + _static_chains(model))
    return Table(FAMILY, TABLE, "knet service proxy; generated, do not edit", tuple(b.sets()),
                 static + tuple(b.chains), (static, *(rules.chains for rules in rendered.values())),
                 tuple(rules.elements for rules in rendered.values()), frozenset(b.maps))


def render_full(model: ProxyModel) -> str:
    """`nft -f` input that replaces the table atomically: for start-up, failures and periodic resyncs."""
    return build_table(model).full()


def render_incremental(old: ProxyModel, new: ProxyModel) -> str:
    """`nft -f` input turning the table of `old` (as last applied) into that of `new`; "" if unchanged."""
    return diff(build_table(old), build_table(new))


def render_cleanup() -> str:
    """`nft -f` input removing the table (e.g. when switching to iptables mode)."""
    return Table(FAMILY, TABLE, "", (), ()).delete()
