"""The per-node Service proxy model: everything one node must program, as one frozen snapshot.

`build_model` is pure (views and config in, `ProxyModel` and problems out). Both renderers read only
this model, so the decisions kube-proxy makes are made once, here, and the renderers just spell them:

- Skipped: headless and ExternalName Services, Services labelled
  `service.kubernetes.io/service-proxy-name` (another proxy owns them), FQDN slices.
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
- Collisions: an (address, protocol, port) or node port claimed by two Services belongs to the one
  that sorts first (namespace, name); the other gets a problem.

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
  mode               nftables or iptables (nftables)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from operators.kube import services as api
from operators.kube.parse import parse_cidr
from operators.kube.services import EndpointSlice, Node, Problem, Service, ServicePort, family_of

MODES = ("nftables", "iptables")
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
                    bad(f"{key}: {item!r} is loopback, where node ports never answer; ignored")
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
        )
        return config, problems


@dataclass(frozen=True)
class Target:
    """One endpoint of one Service port: where DNAT sends a connection."""

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

    @property
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

    @property
    def families(self) -> tuple[int, ...]:
        return tuple(sorted({family_of(ip) for ip in self.cluster_ips}))


def of_family(values: Iterable[str], family: int) -> tuple[str, ...]:
    """The addresses or CIDRs of one family, in their order."""
    return tuple(v for v in values if family_of(v) == family)


def _ip_key(ip: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(ip)
    return addr.version, int(addr)


def _sorted_targets(targets: Iterable[Target]) -> tuple[Target, ...]:
    return tuple(sorted(targets, key=lambda t: (_ip_key(t.ip), t.port)))


@dataclass(frozen=True)
class _Candidate:
    ip: str
    port: int
    local: bool
    ready: bool
    serving: bool
    terminating: bool


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
            for ep in sl.endpoints:
                c = _Candidate(ep.addresses[0], pp.port, ep.node_name == node, ep.ready, ep.serving,
                               ep.terminating)
                old = best.get((c.ip, c.port))
                rank = (c.ready, c.serving, not c.terminating, c.local)
                if old is None or rank > (old.ready, old.serving, not old.terminating, old.local):
                    best[(c.ip, c.port)] = c
    return list(best.values())


def _usable(candidates: list[_Candidate]) -> tuple[Target, ...]:
    """Ready endpoints; if none, the serving-and-terminating ones (kube-proxy's graceful fallback)."""
    chosen = [c for c in candidates if c.ready] or [c for c in candidates if c.serving and c.terminating]
    return _sorted_targets(Target(c.ip, c.port, c.local) for c in chosen)


class _Builder:
    """Walks the Services in order, claiming frontends so that collisions are decided deterministically."""

    def __init__(self, node: Node | None, node_name: str, config: ProxyConfig) -> None:
        self.node_name = node_name
        self.config = config
        self.node_ips = (node.internal_ips + node.external_ips) if node else ()
        self.problems: list[Problem] = []
        self.claims: dict[tuple[Any, ...], str] = {}

    def problem(self, svc: Service, message: str) -> None:
        self.problems.append(Problem("Service", svc.namespace, svc.name, message))

    def claim(self, svc: Service, sport: ServicePort, what: str, key: tuple[Any, ...]) -> bool:
        me = f"{svc.key} port {sport.name or sport.port}"
        owner = self.claims.setdefault(key, me)
        if owner != me:
            self.problem(svc, f"{what} is already used by Service {owner}; ignored here")
        return owner == me

    def source_ranges(self, svc: Service, family: int, lb_ips: tuple[str, ...]) -> tuple[str, ...] | None:
        if not svc.lb_firewall:
            return None
        ranges = of_family(svc.load_balancer_source_ranges, family)
        nets = [ipaddress.ip_network(r) for r in ranges]
        # A request from this node to a local LB VIP loops back with the VIP as source: let it in.
        if any(ipaddress.ip_address(ip) in net for ip in of_family(self.node_ips, family) for net in nets):
            ranges += tuple(ip for ip in lb_ips if not any(ipaddress.ip_address(ip) in net for net in nets))
        return ranges

    def ports(self, svc: Service, family: int, slices: list[EndpointSlice]) -> list[ProxiedPort]:
        cluster_ip = of_family(svc.cluster_ips, family)[0]
        external = svc.type in ("NodePort", "LoadBalancer")
        out: list[ProxiedPort] = []
        for sport in svc.ports:
            proto = sport.protocol.lower()
            what = f"port {sport.name or sport.port}/{sport.protocol}"
            if not self.claim(svc, sport, f"{cluster_ip} {what}", (cluster_ip, proto, sport.port)):
                continue
            ext_ips = tuple(ip for ip in of_family(svc.external_ips, family)
                            if self.claim(svc, sport, f"externalIP {ip} {what}", (ip, proto, sport.port)))
            lb_ips = tuple(ip for ip in of_family(svc.load_balancer_ips, family) if svc.type == "LoadBalancer"
                           and self.claim(svc, sport, f"LB IP {ip} {what}", (ip, proto, sport.port)))
            node_port = sport.node_port if external else 0
            if node_port and not self.claim(svc, sport, f"nodePort {node_port}/{sport.protocol}",
                                            (family, proto, node_port)):
                node_port = 0
            accessible = bool(node_port or ext_ips or lb_ips)
            internal_local = svc.internal_traffic_policy == "Local"
            external_local = accessible and svc.external_traffic_policy == "Local"
            candidates = _candidates(slices, family, sport, self.node_name)
            # Externally reachable ports always need the Cluster set: pod and node traffic to an
            # external address skips the Local policy (it stands for "out to the LB and back").
            cluster = _usable(candidates) if (not internal_local or accessible) else ()
            local = _usable([c for c in candidates if c.local]) if (internal_local or external_local) else ()
            out.append(ProxiedPort(
                namespace=svc.namespace, name=svc.name, port_name=sport.name, protocol=proto,
                family=family, cluster_ip=cluster_ip, port=sport.port, node_port=node_port,
                external_ips=ext_ips, lb_ips=lb_ips,
                source_ranges=self.source_ranges(svc, family, lb_ips) if lb_ips else None,
                affinity_seconds=svc.affinity_timeout if svc.session_affinity == "ClientIP" else 0,
                internal_local=internal_local, external_local=external_local,
                cluster_endpoints=cluster, local_endpoints=local,
                has_endpoints=bool(_usable(candidates)),
            ))
        return out

    def foreign_family(self, svc: Service) -> None:
        families = {family_of(ip) for ip in svc.cluster_ips}
        for what, ips in (("externalIP", svc.external_ips), ("LoadBalancer IP", svc.load_balancer_ips)):
            for ip in ips:
                if family_of(ip) not in families:
                    self.problem(svc, f"{what} {ip} ignored: the Service has no IPv{family_of(ip)} clusterIP")


def _skipped(svc: Service) -> bool:
    """Services this proxy must leave alone: no VIP to program, or owned by another proxy."""
    return svc.headless or svc.external_name or svc.label(api.PROXY_NAME_LABEL) is not None


def _local_ready(slices: list[EndpointSlice], node: str) -> int:
    return len({ep.addresses[0] for sl in slices if sl.family for ep in sl.endpoints
                if ep.ready and ep.node_name == node})


def build_model(
    services: Iterable[Service],
    slices: Iterable[EndpointSlice],
    nodes: Iterable[Node],
    node_name: str,
    config: ProxyConfig | None = None,
) -> tuple[ProxyModel, list[Problem]]:
    """What node `node_name` must program for these Services, and the problems found on the way."""
    config = config or ProxyConfig()
    node = next((n for n in nodes if n.name == node_name), None)
    b = _Builder(node, node_name, config)
    by_service: dict[tuple[str, str], list[EndpointSlice]] = {}
    for sl in sorted(slices, key=lambda s: (s.namespace, s.name)):
        if sl.service_name and sl.family:
            by_service.setdefault((sl.namespace, sl.service_name), []).append(sl)
    ports: list[ProxiedPort] = []
    cluster_ips: set[str] = set()
    health: list[HealthCheck] = []
    seen: set[str] = set()
    for svc in sorted(services, key=lambda s: (s.namespace, s.name)):
        if svc.key in seen:
            b.problem(svc, "defined twice; the second copy is ignored")
            continue
        seen.add(svc.key)
        if _skipped(svc):
            continue
        if not svc.cluster_ips:
            b.problem(svc, "has no valid clusterIP; Service skipped")
            continue
        b.foreign_family(svc)
        svc_slices = by_service.get((svc.namespace, svc.name), [])
        cluster_ips.update(svc.cluster_ips)
        for family in sorted({family_of(ip) for ip in svc.cluster_ips}):
            ports.extend(b.ports(svc, family, svc_slices))
        hc_port = svc.health_check_node_port
        if svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local" and hc_port:
            health.append(HealthCheck(svc.namespace, svc.name, hc_port, _local_ready(svc_slices, node_name)))
    nodeport_cidrs = [c for c in config.node_port_addresses if c != "primary"]
    if "primary" in config.node_port_addresses:
        nodeport_cidrs += [f"{ip}/{32 if family_of(ip) == 4 else 128}" for ip in b.node_ips]
    local_cidrs = config.cluster_cidrs if config.detect_local == "ClusterCIDR" else node.pod_cidrs if node else ()
    model = ProxyModel(
        node=node_name,
        config=config,
        node_ips=b.node_ips,
        local_cidrs=local_cidrs,
        nodeport_cidrs=tuple(dict.fromkeys(nodeport_cidrs)),
        cluster_ips=tuple(sorted(cluster_ips, key=_ip_key)),
        ports=tuple(sorted(ports, key=lambda p: (p.namespace, p.name, p.family, p.port_name, p.protocol))),
        health_checks=tuple(health),
    )
    return model, b.problems
