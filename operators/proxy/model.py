"""The per-node Service proxy model: everything one node must program, as one frozen snapshot.

`build_model` is pure (views and config in, `ProxyModel` and problems out). Both renderers read only
this model, so the decisions kube-proxy makes are made once, here, and the renderers just spell them:

- Skipped: headless and ExternalName Services, Services labelled
  `service.kubernetes.io/service-proxy-name` (another proxy owns them), FQDN slices, and Services and
  slices labelled `service.kubernetes.io/headless` (as kube-proxy's informers select them out).
- Dual-stack: one `ProxiedPort` per Service port and per family of the Service's clusterIPs, with the
  endpoints of the slices of that family. externalIPs and LB IPs of a family the Service has no
  clusterIP for are ignored (with a problem).
- Endpoints: a slice port matches a Service port by name and protocol and gives the target port of the
  endpoints in that slice. The EndpointSlice controller resolves a named targetPort per pod, so one
  Service port may reach different target ports on different endpoints. Only an endpoint's first
  address is used. Ready endpoints are used; when none is ready, serving-and-terminating ones are.
- Traffic policies: internalTrafficPolicy Local sends ClusterIP traffic to this node's endpoints only
  (dropped when there are none). externalTrafficPolicy Local does the same for node ports, externalIPs
  and LB IPs, except for traffic from pods and from the node itself, which may use every endpoint.
- externalIPs: any Service's owner may set them, so they are the way one tenant would take another's
  traffic (CVE-2020-8554). One is used only inside `externalIPRanges`, which the cluster administrator
  sets (none by default, as the DenyServiceExternalIPs admission plugin advises), and never when it is
  an address of any Node or any proxied Service's ClusterIP; each refused one gives a problem.
- Collisions: ClusterIPs are claimed before any externalIP, LB IP or node port, so a ClusterIP always
  wins its (address, protocol, port). Between claims of one rank, the older Service wins
  (creationTimestamp, then UID), never the one whose namespace sorts first; the other gets a problem.

`ProxyConfig` (kube-proxy-like defaults, read by `ProxyConfig.from_dict` from camelCase keys):
  clusterCIDRs       pod ranges; traffic from outside them to a ClusterIP is masqueraded
                     (10.244.0.0/16, fd00:10:244::/56)
  serviceCIDRs       ClusterIP ranges; unallocated addresses in them are dropped
                     (10.96.0.0/16, fd00:10:96::/112)
  masqueradeAll      masquerade all ClusterIP traffic (false)
  masqueradeBit      packet mark bit asking for SNAT (14, i.e. 0x4000, as kube-proxy)
  dropBit            iptables only: mark bit for LB source-range drops (15, i.e. 0x8000)
  nodePortAddresses  CIDRs (or "primary": the Node's addresses) on which node ports answer; a family
                     without any entry answers on all its local addresses; never on loopback ([])
  detectLocalMode    ClusterCIDR (clusterCIDRs) or NodeCIDR (the Node's podCIDRs): what counts as pod
                     traffic (ClusterCIDR)
  externalIPRanges   CIDRs within which Services' externalIPs are programmed; none by default ([])
  mode               nftables or iptables (nftables)
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import operator
import socket
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from operators.kube import services as api
from operators.kube.parse import parse_cidr
from operators.kube.services import EndpointSlice, Node, Problem, Service, ServicePort, family_of

MODES = ("nftables", "iptables")
_LOOPBACK = {"nodePortAddresses": "where node ports never answer"}
DETECT_LOCAL_MODES = ("ClusterCIDR", "NodeCIDR")


@dataclass(frozen=True)
class ProxyConfig:
    cluster_cidrs: tuple[str, ...] = ("10.244.0.0/16", "fd00:10:244::/56")
    service_cidrs: tuple[str, ...] = ("10.96.0.0/16", "fd00:10:96::/112")
    masquerade_all: bool = False
    masquerade_bit: int = 14
    drop_bit: int = 15
    node_port_addresses: tuple[str, ...] = ()
    detect_local: str = "ClusterCIDR"
    mode: str = "nftables"
    external_ip_ranges: tuple[str, ...] = ()

    @property
    def masquerade_mark(self) -> int:
        return 1 << self.masquerade_bit

    @property
    def drop_mark(self) -> int:
        return 1 << self.drop_bit

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> tuple[ProxyConfig, list[Problem]]:
        """Read camelCase (or snake_case) keys; bad values keep their default and give a problem."""
        problems: list[Problem] = []
        default = cls()

        def bad(message: str) -> None:
            problems.append(Problem("ClusterNetworkConfig", "", "default", message))

        def cidrs(key: str, fallback: tuple[str, ...], allow_primary: bool = False) -> tuple[str, ...]:
            value = api.field(data, key)
            if value is None:
                return fallback
            if not isinstance(value, list):
                bad(f"{key} is not a list; using {list(fallback)}")
                return fallback
            out: list[str] = []
            for item in value:
                net = parse_cidr(item)
                if allow_primary and item == "primary":
                    out.append("primary")
                elif net is None:
                    bad(f"{key}: {item!r} is not a valid CIDR; ignored")
                elif net.is_loopback:
                    bad(f"{key}: {item!r} is loopback, {_LOOPBACK.get(key, 'which no Service may use')}; ignored")
                else:
                    out.append(str(net))
            return tuple(dict.fromkeys(out))

        def bit(key: str, fallback: int) -> int:
            value = api.field(data, key, fallback)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 31:
                return value
            bad(f"{key} {value!r} is not a bit number (0-31); using {fallback}")
            return fallback

        def choice(key: str, allowed: tuple[str, ...], fallback: str) -> str:
            value = api.field(data, key, fallback)
            if value in allowed:
                return str(value)
            bad(f"{key} {value!r} is not one of {', '.join(allowed)}; using {fallback}")
            return fallback

        masq_all = api.field(data, "masqueradeAll", False)
        if not isinstance(masq_all, bool):
            bad(f"masqueradeAll {masq_all!r} is not a boolean; using false")
            masq_all = False
        masq_bit, drop_bit = bit("masqueradeBit", default.masquerade_bit), bit("dropBit", default.drop_bit)
        if masq_bit == drop_bit:
            bad("masqueradeBit and dropBit are equal; using the defaults")
            masq_bit, drop_bit = default.masquerade_bit, default.drop_bit
        config = cls(
            cluster_cidrs=cidrs("clusterCIDRs", default.cluster_cidrs),
            service_cidrs=cidrs("serviceCIDRs", default.service_cidrs),
            masquerade_all=masq_all,
            masquerade_bit=masq_bit,
            drop_bit=drop_bit,
            node_port_addresses=cidrs("nodePortAddresses", (), allow_primary=True),
            detect_local=choice("detectLocalMode", DETECT_LOCAL_MODES, default.detect_local),
            mode=choice("mode", MODES, default.mode),
            external_ip_ranges=cidrs("externalIPRanges", ()),
        )
        return config, problems


class Target(NamedTuple):
    """One endpoint of one Service port: where DNAT sends a connection (a tuple: 100k of them are made in a
    full build at 10k Services, and a frozen dataclass is several times slower to make)."""

    ip: str
    port: int
    local: bool  # on this node


@dataclass(frozen=True)
class ProxiedPort:
    """One Service port in one IP family, with everything this node does for it."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # tcp | udp | sctp: as both rulesets spell it
    family: int
    cluster_ip: str
    port: int
    node_port: int  # 0: none
    external_ips: tuple[str, ...]
    lb_ips: tuple[str, ...]
    source_ranges: tuple[str, ...] | None  # LB source-range firewall: None none, () drop all
    affinity_seconds: int  # 0: no ClientIP affinity
    internal_local: bool  # internalTrafficPolicy Local
    external_local: bool  # externalTrafficPolicy Local (and externally reachable)
    cluster_endpoints: tuple[Target, ...]  # for Cluster policy; () when no traffic uses it
    local_endpoints: tuple[Target, ...]  # for Local policy; () when no traffic uses it
    has_endpoints: bool  # usable endpoints exist anywhere in the cluster

    @property
    def key(self) -> str:
        """`namespace/name:port`, as kube-proxy names a service port (for comments)."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def path(self) -> str:
        """`namespace/name/protocol/port`: the readable part of chain names (all parts validated)."""
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name}"

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.lb_ips)

    @property
    def internal_endpoints(self) -> tuple[Target, ...]:
        return self.local_endpoints if self.internal_local else self.cluster_endpoints

    @property
    def external_endpoints(self) -> tuple[Target, ...]:
        return self.local_endpoints if self.external_local else self.cluster_endpoints

    @property
    def uses_external_chain(self) -> bool:
        """External traffic gets its own chain whenever it may reach an endpoint (even via short-circuit)."""
        return self.has_endpoints and self.externally_accessible

    @property
    def firewalled(self) -> bool:
        return self.source_ranges is not None and bool(self.lb_ips)

    @functools.cached_property
    def reachable_endpoints(self) -> tuple[Target, ...]:
        """Every endpoint some traffic may be sent to: each needs its DNAT chain."""
        return _sorted_targets(set(self.cluster_endpoints) | set(self.local_endpoints))


@dataclass(frozen=True)
class HealthCheck:
    """A healthCheckNodePort the agent must serve: 200 when this node has local endpoints."""

    namespace: str
    name: str
    node_port: int
    local_endpoints: int


class Counts(NamedTuple):
    services: int  # with at least one port
    endpoints: int  # reachable, over every port


@dataclass(frozen=True)
class ProxyModel:
    node: str
    config: ProxyConfig
    node_ips: tuple[str, ...]
    local_cidrs: tuple[str, ...]  # sources counted as pod traffic
    nodeport_cidrs: tuple[str, ...]  # a family with none answers node ports on all its local addresses
    cluster_ips: tuple[str, ...]  # every ClusterIP of a proxied Service (other ports are rejected)
    ports: tuple[ProxiedPort, ...]
    health_checks: tuple[HealthCheck, ...] = ()
    counts: Counts | None = field(default=None, compare=False, repr=False)  # from `build_model`, kept up to date
    lb_ports: tuple[ProxiedPort, ...] | None = field(default=None, compare=False, repr=False)  # the same way

    @property
    def families(self) -> tuple[int, ...]:
        return tuple(sorted({family_of(ip) for ip in self.cluster_ips}))

    @functools.cached_property
    def endpoint_count(self) -> int:
        """Endpoints some traffic may reach, over every port: the agent's gauge and its NodeNetworkStatus
        both read it. A built model carries it, updated from the changed Services alone."""
        return self.counts.endpoints if self.counts else sum(len(p.reachable_endpoints) for p in self.ports)

    @functools.cached_property
    def balanced_ports(self) -> tuple[ProxiedPort, ...]:
        """The ports with LoadBalancer addresses (which the agent announces on the underlay): a built model
        carries them, updated from the changed Services alone."""
        return self.lb_ports if self.lb_ports is not None else tuple(p for p in self.ports if p.lb_ips)

    @functools.cached_property
    def service_count(self) -> int:
        """Services with at least one programmed port."""
        return self.counts.services if self.counts else len({(p.namespace, p.name) for p in self.ports})


def of_family(values: Iterable[str], family: int) -> tuple[str, ...]:
    """The addresses or CIDRs of one family, in their order."""
    return tuple(v for v in values if family_of(v) == family)


def _packed(ip: str) -> bytes:
    """A normalised address as bytes: within one family these sort in numeric order (`ipaddress` is ten
    times slower, and this runs per endpoint)."""
    return socket.inet_pton(socket.AF_INET6, ip) if ":" in ip else socket.inet_aton(ip)


def _ip_key(ip: str) -> tuple[int, bytes]:
    """Numeric order of addresses of both families, IPv4 first."""
    packed = _packed(ip)
    return len(packed), packed


def _address_order(t: Target | _Candidate) -> tuple[bytes, int]:
    """Endpoints of one family in address, then port order."""
    return _packed(t.ip), t.port


def _sorted_targets(targets: Iterable[Target]) -> tuple[Target, ...]:
    return tuple(sorted(targets, key=_address_order))


class _Candidate(NamedTuple):
    ip: str
    port: int
    local: bool
    ready: bool
    serving: bool
    terminating: bool

    @property
    def rank(self) -> tuple[bool, bool, bool, bool]:
        """Of two copies of one endpoint, the higher rank wins: ready, serving, not terminating, local."""
        return self.ready, self.serving, not self.terminating, self.local


def _candidates(slices: Iterable[EndpointSlice], family: int, sport: ServicePort,
                node: str) -> list[_Candidate]:
    """Endpoints for one Service port and family, deduplicated (the healthiest copy wins)."""
    best: dict[tuple[str, int], _Candidate] = {}
    for sl in slices:
        if sl.family != family:
            continue
        for pp in sl.ports:
            if pp.name != sport.name or pp.protocol != sport.protocol:
                continue
            port = pp.port
            for ep in sl.endpoints:
                ip = ep.addresses[0]
                c = _Candidate(ip, port, ep.node_name == node, ep.ready, ep.serving, ep.terminating)
                old = best.get((ip, port))
                if old is None or c.rank > old.rank:
                    best[(ip, port)] = c
    return list(best.values())


def _usable(candidates: list[_Candidate]) -> tuple[Target, ...]:
    """Ready endpoints; if none, the serving-and-terminating ones (kube-proxy's graceful fallback)."""
    chosen = [c for c in candidates if c.ready] or [c for c in candidates if c.serving and c.terminating]
    chosen.sort(key=_address_order)
    return tuple([Target(c.ip, c.port, c.local) for c in chosen])


ClaimKey = tuple[Any, ...]  # (address, protocol, port) or (family, protocol, nodePort)


@dataclass(frozen=True)
class _Context:
    """What every Service's piece depends on besides the Service and its slices."""

    node_name: str
    node_ips: tuple[str, ...]
    node_addresses: frozenset[str] = frozenset()  # of every Node: never an externalIP
    external_ip_ranges: tuple[str, ...] = ()  # ProxyConfig.external_ip_ranges


def _screened_external_ips(svc: Service, ctx: _Context) -> tuple[tuple[str, ...], tuple[Problem, ...]]:
    """The externalIPs of `svc` that may be programmed, and a problem for each refused one. Whoever may
    edit a Service may set them, so an address counts only inside the administrator's ranges, and a
    Node's address never does (it would take the node's own ports, such as the kubelet's)."""
    if not svc.external_ips:
        return (), ()
    nets = [ipaddress.ip_network(r) for r in ctx.external_ip_ranges]
    families = {family_of(ip) for ip in svc.cluster_ips}
    allowed: list[str] = []
    problems: list[Problem] = []
    for ip in svc.external_ips:
        if family_of(ip) not in families:
            continue  # ignored, and reported, as of a family the Service has no clusterIP for
        if ip in ctx.node_addresses:
            problems.append(_problem(svc, f"externalIP {ip} is a Node's address; ignored"))
        elif not any(ipaddress.ip_address(ip) in net for net in nets):
            problems.append(_problem(svc, f"externalIP {ip} is outside ClusterNetworkConfig "
                                          "spec.proxy.externalIPRanges; ignored"))
        else:
            allowed.append(ip)
    return tuple(allowed), tuple(problems)


@dataclass(frozen=True)
class _Frontend:
    """One Service port in one family: its ClusterIP key first (lost, it takes the others with it)."""

    sport: ServicePort
    owner: tuple[str, str]  # (Service key, port name or number), as collisions are reported
    cluster: ClaimKey
    others: tuple[ClaimKey, ...]  # externalIPs, LB IPs, node port


def _frontends(svc: Service, families: tuple[int, ...], ctx: _Context) -> tuple[_Frontend, ...]:
    external = svc.type in ("NodePort", "LoadBalancer")
    external_ips = _screened_external_ips(svc, ctx)[0]
    out: list[_Frontend] = []
    for family in families:
        cluster_ip = of_family(svc.cluster_ips, family)[0]
        ips = of_family(external_ips, family)
        ips += of_family(svc.load_balancer_ips, family) if svc.type == "LoadBalancer" else ()
        for sport in svc.ports:
            proto = sport.protocol.lower()
            node_port = ((family, proto, sport.node_port),) if external and sport.node_port else ()
            out.append(_Frontend(sport, (svc.key, sport.name or str(sport.port)), (cluster_ip, proto, sport.port),
                                 tuple((ip, proto, sport.port) for ip in ips) + node_port))
    return tuple(out)


@dataclass(frozen=True)
class _Piece:
    """What one Service contributes to the model, kept by the next build unless `Changes` name the Service
    (or a collision it lost or won moved)."""

    svc: Service
    families: tuple[int, ...]
    frontends: tuple[_Frontend, ...]
    slices: tuple[EndpointSlice, ...]
    lost: frozenset[tuple[ClaimKey, str]]  # frontends (key, port name) that another Service owns
    ports: tuple[ProxiedPort, ...]  # ordered by family, port name, protocol
    cluster_ips: tuple[tuple[tuple[int, bytes], str], ...]  # (order key, address)
    health: HealthCheck | None
    problems: tuple[Problem, ...]  # addresses of a family without clusterIP
    endpoints: int  # reachable endpoints over its ports: the counts follow a sync's changes, no pass over all

    @property
    def balanced(self) -> bool:
        """Whether a port of it has a LoadBalancer address."""
        return any(p.lb_ips for p in self.ports)


def _problem(svc: Service, message: str) -> Problem:
    return Problem("Service", svc.namespace, svc.name, message)


def _collision(svc: Service, sport: ServicePort, key: ClaimKey, owner: tuple[str, str]) -> Problem:
    if isinstance(key[0], int):
        what = f"nodePort {sport.node_port}/{sport.protocol}"
    else:
        kind = "" if key[0] in svc.cluster_ips else "externalIP " if key[0] in svc.external_ips else "LB IP "
        what = f"{kind}{key[0]} port {sport.name or sport.port}/{sport.protocol}"
    return _problem(svc, f"{what} is already used by Service {owner[0]} port {owner[1]}; ignored here")


Lost = dict[str, tuple[set[tuple[ClaimKey, str]], list[Problem]]]  # Service key -> lost frontends, problems
_NOTHING_LOST: frozenset[tuple[ClaimKey, str]] = frozenset()


def _settle(claimants: list[tuple[Service, tuple[_Frontend, ...]]]) -> Lost:
    """Who owns each frontend, over all Services at every full sync. Every ClusterIP is claimed before any
    externalIP, LB IP or node port, so no Service can take a ClusterIP's address; within a rank the older
    Service wins, so a newer one cannot take over by its namespace's name. A frontend whose ClusterIP is
    lost takes its others with it."""
    order = sorted(claimants, key=lambda c: c[0].age_order)
    owners: dict[ClaimKey, tuple[str, str]] = {}
    cluster_addresses: dict[str, str] = {}  # ClusterIP -> its Service's key
    lost: Lost = {}  # only the Services that lost something (runs for every Service at every full sync)

    def lose(svc: Service, f: _Frontend, key: ClaimKey, problem: Problem) -> None:
        entry = lost.setdefault(f.owner[0], (set(), []))
        entry[0].add((key, f.sport.name))
        entry[1].append(problem)

    for svc, frontends in order:
        for f in frontends:
            cluster_addresses.setdefault(f.cluster[0], f.owner[0])
            if (owner := owners.setdefault(f.cluster, f.owner)) != f.owner:
                lose(svc, f, f.cluster, _collision(svc, f.sport, f.cluster, owner))
    for svc, frontends in order:
        for f in frontends:
            if (gone := lost.get(f.owner[0])) is not None and (f.cluster, f.sport.name) in gone[0]:
                continue
            for key in f.others:
                holder = cluster_addresses.get(key[0])  # its own ClusterIP too: served as that already
                if holder is not None:
                    lose(svc, f, key, _problem(svc, f"{key[0]} is a ClusterIP of Service {holder}; "
                                                    f"not used for port {f.sport.name or f.sport.port}"))
                elif (owner := owners.setdefault(key, f.owner)) != f.owner:
                    lose(svc, f, key, _collision(svc, f.sport, key, owner))
    return lost


def _source_ranges(svc: Service, family: int, lb_ips: tuple[str, ...], node_ips: tuple[str, ...],
                   ) -> tuple[str, ...] | None:
    if not svc.lb_firewall:
        return None
    ranges = of_family(svc.load_balancer_source_ranges, family)
    nets = [ipaddress.ip_network(r) for r in ranges]
    # A request from this node to a local LB VIP loops back with the VIP as source: let it in.
    if any(ipaddress.ip_address(ip) in net for ip in of_family(node_ips, family) for net in nets):
        ranges += tuple(ip for ip in lb_ips if not any(ipaddress.ip_address(ip) in net for net in nets))
    return ranges


def _ports(svc: Service, family: int, slices: tuple[EndpointSlice, ...], lost: frozenset[Any],
           ctx: _Context) -> list[ProxiedPort]:
    cluster_ip = of_family(svc.cluster_ips, family)[0]
    external = svc.type in ("NodePort", "LoadBalancer")
    external_ips = of_family(_screened_external_ips(svc, ctx)[0], family)
    out: list[ProxiedPort] = []
    for sport in svc.ports:
        proto = sport.protocol.lower()

        def owned(key: ClaimKey, sport: ServicePort = sport) -> bool:
            return (key, sport.name) not in lost

        if not owned((cluster_ip, proto, sport.port)):
            continue
        ext_ips = tuple(ip for ip in external_ips if owned((ip, proto, sport.port)))
        lb_ips = tuple(ip for ip in of_family(svc.load_balancer_ips, family)
                       if svc.type == "LoadBalancer" and owned((ip, proto, sport.port)))
        node_port = sport.node_port if external and owned((family, proto, sport.node_port)) else 0
        accessible = bool(node_port or ext_ips or lb_ips)
        internal_local = svc.internal_traffic_policy == "Local"
        external_local = accessible and svc.external_traffic_policy == "Local"
        candidates = _candidates(slices, family, sport, ctx.node_name)
        # Externally reachable ports always need the Cluster set: pod and node traffic to an
        # external address skips the Local policy (it stands for "out to the LB and back").
        usable = _usable(candidates)
        cluster = usable if (not internal_local or accessible) else ()
        local = _usable([c for c in candidates if c.local]) if (internal_local or external_local) else ()
        out.append(ProxiedPort(
            namespace=svc.namespace, name=svc.name, port_name=sport.name, protocol=proto,
            family=family, cluster_ip=cluster_ip, port=sport.port, node_port=node_port,
            external_ips=ext_ips, lb_ips=lb_ips,
            source_ranges=_source_ranges(svc, family, lb_ips, ctx.node_ips) if lb_ips else None,
            affinity_seconds=svc.affinity_timeout if svc.session_affinity == "ClientIP" else 0,
            internal_local=internal_local, external_local=external_local,
            cluster_endpoints=cluster, local_endpoints=local,
            has_endpoints=bool(usable),
        ))
    return out


def _foreign_family(svc: Service) -> list[Problem]:
    families = {family_of(ip) for ip in svc.cluster_ips}
    return [_problem(svc, f"{what} {ip} ignored: the Service has no IPv{family_of(ip)} clusterIP")
            for what, ips in (("externalIP", svc.external_ips), ("LoadBalancer IP", svc.load_balancer_ips))
            for ip in ips if family_of(ip) not in families]


def _piece(svc: Service, families: tuple[int, ...], frontends: tuple[_Frontend, ...],
           slices: tuple[EndpointSlice, ...], lost: frozenset[Any], ctx: _Context) -> _Piece:
    ports = [p for family in families for p in _ports(svc, family, slices, lost, ctx)]
    ports.sort(key=lambda p: (p.family, p.port_name, p.protocol))
    hc_port = svc.health_check_node_port
    health = None
    if svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local" and hc_port:
        health = HealthCheck(svc.namespace, svc.name, hc_port, _local_ready(slices, ctx.node_name))
    return _Piece(svc, families, frontends, slices, lost, tuple(ports),
                  tuple((_ip_key(ip), ip) for ip in svc.cluster_ips), health,
                  (*_foreign_family(svc), *_screened_external_ips(svc, ctx)[1]),
                  sum(len(p.reachable_endpoints) for p in ports))


def _skipped(svc: Service) -> bool:
    """Services this proxy must leave alone: no VIP to program, labelled headless, or owned by another proxy
    (the Services kube-proxy's label selector leaves out)."""
    return (svc.headless or svc.external_name or svc.label(api.PROXY_NAME_LABEL) is not None
            or svc.label(api.HEADLESS_LABEL) is not None)


def _local_ready(slices: Iterable[EndpointSlice], node: str) -> int:
    return len({ep.addresses[0] for sl in slices if sl.family for ep in sl.endpoints
                if ep.ready and ep.node_name == node})


ServiceKey = tuple[str, str]  # (namespace, name)


def slice_owner(sl: EndpointSlice) -> ServiceKey | None:
    """The Service a slice gives endpoints to, if it gives any."""
    return (sl.namespace, sl.service_name) if sl.service_name and sl.family and not sl.headless else None


@dataclass(frozen=True)
class Changes:
    """What changed since the build a new one starts from, by Service, as kube-proxy's change trackers
    hand it to its sync: the Services whose object was added, changed or removed, and those whose
    EndpointSlices changed (a slice that moved counts for the Service it left and for the one it joined).
    The agent's store collects them from its informers (`operators.agent.store.ProxyStore`)."""

    services: frozenset[ServiceKey] = frozenset()
    endpoints: frozenset[ServiceKey] = frozenset()


@dataclass(frozen=True)
class Views:
    """The cluster as a build reads it: Services by (namespace, name) (two while one replaces another),
    EndpointSlices by the Service they give endpoints to (`slice_owner`), and the Nodes. A build from
    `Changes` looks up only the Services they name; a full build reads everything."""

    services: Mapping[ServiceKey, Sequence[Service]]
    slices: Mapping[ServiceKey, Sequence[EndpointSlice]]
    nodes: Sequence[Node]

    @classmethod
    def of(cls, services: Iterable[Service], slices: Iterable[EndpointSlice], nodes: Iterable[Node]) -> Views:
        """Views grouped from flat lists (offline files, tests), in the order given."""
        by_key: dict[ServiceKey, list[Service]] = {}
        for svc in services:
            by_key.setdefault((svc.namespace, svc.name), []).append(svc)
        by_owner: dict[ServiceKey, list[EndpointSlice]] = {}
        for sl in slices:
            if (owner := slice_owner(sl)) is not None:
                by_owner.setdefault(owner, []).append(sl)
        return cls(by_key, by_owner, tuple(nodes))


def _service_slices(views: Views, key: ServiceKey) -> tuple[EndpointSlice, ...]:
    group = views.slices.get(key, ())
    return tuple(sorted(group, key=lambda s: s.name)) if len(group) > 1 else tuple(group)


@dataclass(frozen=True)
class Build:
    """One `build_model`: the model and its problems, and what the next build from `Changes` starts from."""

    model: ProxyModel
    problems: tuple[Problem, ...]
    changed: frozenset[ServiceKey] | None  # Services whose ports may differ from the previous build's; None: all
    context: _Context
    pieces: Mapping[str, _Piece]  # by Service key, in Service order; never changed once built

    def ports_of(self, services: Iterable[ServiceKey]) -> list[ProxiedPort]:
        """The ports of these Services (e.g. the changed ones), in no particular order."""
        return [p for ns, name in services if (piece := self.pieces.get(f"{ns}/{name}")) for p in piece.ports]


class _Plan(NamedTuple):
    """A Service whose piece is to be built: what the first pass over all Services decided for it."""

    svc: Service
    families: tuple[int, ...]
    frontends: tuple[_Frontend, ...]
    slices: tuple[EndpointSlice, ...]
    lost: frozenset[Any]
    lost_problems: list[Problem]
    cached: _Piece | None


def _plans(views: Views, ctx: _Context, previous: Build | None, changes: Changes) -> list[_Plan | Problem]:
    """Every Service in order, with collisions decided over all of them: a plan, or why it is skipped. A
    Service that `changes` does not name keeps its frontends from `previous`, and its piece too when it
    lost the same frontends."""
    old = previous.pieces if previous is not None else {}
    chosen: list[tuple[Service, tuple[int, ...], tuple[_Frontend, ...], _Piece | None] | Problem] = []
    for key in sorted(views.services):
        group = views.services[key]
        if not group:
            continue
        cached = old.get(f"{key[0]}/{key[1]}") if key not in changes.services else None
        planned = False
        for svc in group:
            if planned:
                chosen.append(_problem(svc, "defined twice; the second copy is ignored"))
            elif cached is not None:
                chosen.append((svc, cached.families, cached.frontends, cached))
            elif _skipped(svc):
                continue
            elif not svc.cluster_ips:
                chosen.append(_problem(svc, "has no valid clusterIP; Service skipped"))
                continue
            else:
                families = tuple(sorted({family_of(ip) for ip in svc.cluster_ips}))
                chosen.append((svc, families, _frontends(svc, families, ctx), None))
            planned = True
    settled = _settle([(c[0], c[2]) for c in chosen if not isinstance(c, Problem)])
    out: list[_Plan | Problem] = []
    for entry in chosen:
        if isinstance(entry, Problem):
            out.append(entry)
            continue
        svc, families, frontends, cached = entry
        lost_entry = settled.get(svc.key)
        lost, lost_problems = (frozenset(lost_entry[0]), lost_entry[1]) if lost_entry else (_NOTHING_LOST, [])
        key = (svc.namespace, svc.name)
        reuse = cached if cached is not None and key not in changes.endpoints and cached.lost == lost else None
        slices = reuse.slices if reuse is not None else _service_slices(views, key)
        out.append(_Plan(svc, families, frontends, slices, lost, lost_problems, reuse))
    return out


Group = tuple[int, ProxyModel, tuple[ProxiedPort, ...]]  # a group's number, the model's head, its ports


def _head(views: Views, node_name: str, config: ProxyConfig) -> tuple[ProxyModel, _Context]:
    """The model without ports (what every port's rules depend on), and the pieces' context."""
    nodes = views.nodes
    node = next((n for n in nodes if n.name == node_name), None)
    ctx = _Context(node_name, (node.internal_ips + node.external_ips) if node else (),
                   frozenset(ip for n in nodes for ip in n.internal_ips + n.external_ips), config.external_ip_ranges)
    nodeport_cidrs = [c for c in config.node_port_addresses if c != "primary"]
    if "primary" in config.node_port_addresses:
        nodeport_cidrs += [f"{ip}/{32 if family_of(ip) == 4 else 128}" for ip in ctx.node_ips]
    local_cidrs = config.cluster_cidrs if config.detect_local == "ClusterCIDR" else node.pod_cidrs if node else ()
    head = ProxyModel(node=node_name, config=config, node_ips=ctx.node_ips, local_cidrs=local_cidrs,
                      nodeport_cidrs=tuple(dict.fromkeys(nodeport_cidrs)), cluster_ips=(), ports=())
    return head, ctx


def stream_model(views: Views, node_name: str, config: ProxyConfig | None = None, groups: int = 1,
                 group_of: Callable[[str, str], int] = lambda namespace, name: 0,
                 ) -> Generator[Group, None, Build]:
    """A build from scratch that yields the ports group by group (`group_of` a Service's (namespace, name)),
    each group once all its Services are built, in order, with the model's head; it returns the `Build`.
    The agent's full sync renders each group's nft shard and streams it to nft while the next group is
    built (`operators.agent.dataplane.FullSync`)."""
    head, ctx = _head(views, node_name, config or ProxyConfig())
    plans = _plans(views, ctx, None, Changes())
    members: list[list[_Plan]] = [[] for _ in range(groups)]
    for plan in plans:
        if isinstance(plan, _Plan):
            members[group_of(plan.svc.namespace, plan.svc.name)].append(plan)
    made: dict[str, _Piece] = {}
    for group, todo in enumerate(members):
        for plan in todo:
            made[plan.svc.key] = _piece(plan.svc, plan.families, plan.frontends, plan.slices, plan.lost, ctx)
        yield group, head, tuple(p for plan in todo for p in made[plan.svc.key].ports)
    return _assembled(head, ctx, plans, made, None, None)


def _assembled(head: ProxyModel, ctx: _Context, plans: list[_Plan | Problem], made: Mapping[str, _Piece],
               previous: Build | None, changed: frozenset[ServiceKey] | None) -> Build:
    """The pieces in Service order, and the model and problems they make."""
    pieces: dict[str, _Piece] = {}
    problems: list[Problem] = []
    for entry in plans:
        if isinstance(entry, _Plan):
            pieces[entry.svc.key] = piece = made[entry.svc.key]
            problems += [*piece.problems, *entry.lost_problems]
        else:
            problems.append(entry)
    return _model(head, ctx, pieces, tuple(problems), previous, changed)


def _model(head: ProxyModel, ctx: _Context, pieces: dict[str, _Piece], problems: tuple[Problem, ...],
           previous: Build | None, changed: frozenset[ServiceKey] | None) -> Build:
    """The Build of these pieces. From a `previous` build and the Services `changed` since, the ClusterIPs,
    health checks and counts are brought up to date from the changed pieces alone where they can be."""
    if previous is None or changed is None or previous.model.counts is None:
        pairs: list[tuple[_Piece | None, _Piece | None]] | None = None
    else:
        pairs = [(previous.pieces.get(key), pieces.get(key)) for key in (f"{ns}/{name}" for ns, name in changed)]
    if pairs is None or any((a and a.cluster_ips) != (b and b.cluster_ips) for a, b in pairs):
        cluster_ips = tuple(ip for _, ip in sorted({ip for p in pieces.values() for ip in p.cluster_ips}))
    else:
        cluster_ips = previous.model.cluster_ips if previous else ()
    if pairs is None or any(p is not None and p.health for pair in pairs for p in pair):
        health = tuple(piece.health for piece in pieces.values() if piece.health)
    else:
        health = previous.model.health_checks if previous else ()
    if pairs is None or previous is None or any(p is not None and p.balanced for pair in pairs for p in pair):
        balanced = tuple(port for piece in pieces.values() if piece.balanced for port in piece.ports if port.lb_ips)
    else:
        balanced = previous.model.balanced_ports
    if pairs is None or previous is None or previous.model.counts is None:
        counts = Counts(sum(1 for p in pieces.values() if p.ports), sum(p.endpoints for p in pieces.values()))
    else:
        services, endpoints = previous.model.counts
        for a, b in pairs:
            services += bool(b and b.ports) - bool(a and a.ports)
            endpoints += (b.endpoints if b else 0) - (a.endpoints if a else 0)
        counts = Counts(services, endpoints)
    model = replace(head, cluster_ips=cluster_ips, health_checks=health, counts=counts, lb_ports=balanced,
                    ports=tuple(itertools.chain.from_iterable(map(operator.attrgetter("ports"), pieces.values()))))
    return Build(model, problems, changed, ctx, pieces)


def _endpoints_only(views: Views, head: ProxyModel, previous: Build, touched: frozenset[ServiceKey]) -> Build:
    """Only EndpointSlices changed: the pieces of the Services they belong (or belonged) to are rebuilt from
    their slices; frontends, collisions and problems stay, since no Service changed."""
    pieces = dict(previous.pieces)
    changed: set[ServiceKey] = set()
    for key in touched:
        old = pieces.get(f"{key[0]}/{key[1]}")
        if old is not None and (slices := _service_slices(views, key)) != old.slices:
            pieces[old.svc.key] = _piece(old.svc, old.families, old.frontends, slices, old.lost, previous.context)
            changed.add(key)
    if not changed and head == replace(previous.model, cluster_ips=(), ports=(), health_checks=()):
        return replace(previous, changed=frozenset())
    return _model(head, previous.context, pieces, previous.problems, previous, frozenset(changed))


def build_model(views: Views, node_name: str, config: ProxyConfig | None = None, previous: Build | None = None,
                changes: Changes | None = None) -> Build:
    """What node `node_name` must program for these views, and the problems found on the way.

    Pure: nothing given is changed. From a `previous` build and the `changes` made since it, only the
    Services they name are rebuilt (when only EndpointSlices changed, no other Service is looked at);
    the result equals a build from scratch (`tests/unit/proxy/test_proxy_changes.py`). Without them,
    or when the node or the allowed externalIPs changed, everything is built."""
    config = config or ProxyConfig()
    head, ctx = _head(views, node_name, config)
    if previous is None or changes is None or previous.context != ctx:
        gen = stream_model(views, node_name, config)
        while True:
            try:
                next(gen)
            except StopIteration as done:
                return done.value
    if not changes.services:
        return _endpoints_only(views, head, previous, changes.endpoints)
    plans = _plans(views, ctx, previous, changes)
    made = {p.svc.key: p.cached or _piece(p.svc, p.families, p.frontends, p.slices, p.lost, ctx)
            for p in plans if isinstance(p, _Plan)}
    changed = {key for key, piece in made.items() if previous.pieces.get(key) is not piece}
    changed.update(key for key in previous.pieces if key not in made)
    return _assembled(head, ctx, plans, made, previous, frozenset(tuple(k.split("/", 1)) for k in changed))
