"""Typed, frozen views of Services, EndpointSlices and Nodes, parsed from plain API dicts.

The proxy model must never see a malformed object, and one bad object must never stop the
others from being programmed. So parsing here (with `operators.kube.parse`):

- reads objects as the API serves them (camelCase JSON: informers, Kopf bodies, YAML files);
- never raises: it returns the view (or None when the object is unusable as a whole) and a list
  of `Problem`s naming the object at fault, so the caller can emit an Event and skip just the bad
  part (a port, an address, an endpoint);
- validates every string that may later reach a ruleset (namespace, name and port names as DNS
  labels) and normalises every address, so renderers can print view fields as they are.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from operators.kube.parse import Problem, Reader, field, is_dns_label, is_port, timestamp

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
TRAFFIC_POLICIES = ("Cluster", "Local")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
# On an EndpointSlice: its endpoints are for DNS only, no proxy programs them (kube-proxy selects such slices out).
HEADLESS_LABEL = "service.kubernetes.io/headless"
DEFAULT_AFFINITY_SECONDS = 10800  # the API server's default for sessionAffinityConfig.clientIP
MAX_AFFINITY_SECONDS = 86400

# Names of EndpointSlices and Nodes: only characters that are safe in chain names and comments.
_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def family_of(ip: str) -> int:
    """4 or 6, for an address or network that was already validated."""
    return 6 if ":" in ip else 4


def _is_object_name(value: object) -> bool:
    return isinstance(value, str) and _OBJECT_NAME.fullmatch(value) is not None


# --- Service -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePort:
    name: str  # "" only for single-port Services
    protocol: str  # TCP | UDP | SCTP
    port: int
    target_port: int | str  # a number, or a container port name resolved per endpoint by the slices
    node_port: int  # 0: none


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]  # ("None",) for headless Services
    ip_families: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    external_ips: tuple[str, ...]
    load_balancer_ips: tuple[str, ...]  # status.loadBalancer.ingress[].ip (not ipMode: Proxy)
    load_balancer_source_ranges: tuple[str, ...]  # the valid ones, normalised
    lb_firewall: bool  # loadBalancerSourceRanges was set, even if no entry was valid: fail closed
    session_affinity: str  # None | ClientIP
    affinity_timeout: int  # seconds, meaningful for ClientIP
    external_traffic_policy: str
    internal_traffic_policy: str
    health_check_node_port: int  # 0: none
    external_host: str  # spec.externalName of an ExternalName Service, as given (DNS validates it), else ""
    labels: tuple[tuple[str, str], ...]  # sorted
    created: str = ""  # metadata.creationTimestamp (RFC 3339, UTC), "" when absent
    uid: str = ""

    @functools.cached_property
    def key(self) -> str:
        """`namespace/name` (kept: a full proxy sync asks for it several times per Service)."""
        return f"{self.namespace}/{self.name}"

    @functools.cached_property
    def age_order(self) -> tuple[bool, str, str, str, str]:
        """Older first: creationTimestamp, then UID. The API server sets both, so the names decide only
        between objects that have neither (offline files); a missing timestamp counts as the newest."""
        return not self.created, self.created, self.uid, self.namespace, self.name

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)

    @property
    def headless(self) -> bool:
        return self.cluster_ips == ("None",)

    @property
    def external_name(self) -> bool:
        return self.type == "ExternalName"


def _service_ports(p: Reader, spec: dict[str, Any]) -> tuple[ServicePort, ...]:
    ports: list[ServicePort] = []
    raw_ports = p.array_at(spec, "ports")
    for i, raw in enumerate(raw_ports):
        name = field(raw, "name", "")
        what = f"port {name or i}"
        if name == "" and len(raw_ports) > 1:
            p.problem(f"{what}: a name is required when a Service has several ports; port skipped")
            continue
        if name != "" and not is_dns_label(name):
            p.problem(f"{what}: name {name!r} is not a valid DNS label; port skipped")
            continue
        protocol = p.protocol(field(raw, "protocol", "TCP"), what)
        number = p.port(field(raw, "port"), f"{what}: port")
        node_port = p.port(field(raw, "nodePort", 0), f"{what}: nodePort", allow_zero=True)
        target = field(raw, "targetPort", number)
        if isinstance(target, str) and target.isdigit():
            target = int(target)
        target_ok = is_dns_label(target) if isinstance(target, str) else is_port(target)
        if not target_ok and target is not None:  # None: defaults to `port`, already reported
            p.problem(f"{what}: targetPort {target!r} is neither a port number nor a port name")
        if protocol is None or number is None or node_port is None or not target_ok:
            continue
        ports.append(ServicePort(name, protocol, number, target, node_port))
    return tuple(ports)


def _cluster_ips(p: Reader, spec: dict[str, Any]) -> tuple[str, ...]:
    raw = p.array_at(spec, "clusterIPs") or ([spec_ip] if (spec_ip := field(spec, "clusterIP")) else [])
    if raw and raw[0] == "None":
        return ("None",)
    ips = p.ips(raw, "clusterIPs")
    if len({family_of(ip) for ip in ips}) < len(ips):
        p.problem("clusterIPs has two addresses of one family; using the first")
        ips = tuple(ip for i, ip in enumerate(ips) if family_of(ip) not in {family_of(x) for x in ips[:i]})
    return ips


def _lb_ingress(p: Reader, obj: object) -> tuple[str, ...]:
    lb = p.mapping_at(p.mapping_at(obj, "status"), "loadBalancer")
    raw = [field(i, "ip") for i in p.array_at(lb, "ingress") if field(i, "ip") and field(i, "ipMode") != "Proxy"]
    return p.ips(raw, "status.loadBalancer.ingress")


def _external_host(spec: dict[str, Any]) -> str:
    host = field(spec, "externalName", "")
    return host if isinstance(host, str) else ""


def parse_service(obj: object) -> tuple[Service | None, list[Problem]]:
    """The Service view and its problems; None when the object cannot be used at all."""
    p = Reader.of("Service", obj)
    labels = p.metadata_map(obj, "labels")
    if not p.named(is_dns_label, "DNS label"):
        return None, p.problems
    spec = p.mapping_at(obj, "spec")
    svc_type = field(spec, "type", "ClusterIP")
    if svc_type not in SERVICE_TYPES:
        p.problem(f"type {svc_type!r} is not one of {', '.join(SERVICE_TYPES)}; Service skipped")
        return None, p.problems
    cluster_ips = _cluster_ips(p, spec)
    families = tuple(f for f in p.array_at(spec, "ipFamilies") if isinstance(f, str))
    actual = tuple(f"IPv{family_of(ip)}" for ip in cluster_ips if ip != "None")
    if families and actual and families[: len(actual)] != actual:
        p.problem(f"ipFamilies {list(families)} do not match clusterIPs {list(cluster_ips)}; "
                  "using the families of the addresses")
    affinity = p.choice(field(spec, "sessionAffinity"), ("None", "ClientIP"), "None", "sessionAffinity")
    timeout = field(field(field(spec, "sessionAffinityConfig"), "clientIP"), "timeoutSeconds",
                    DEFAULT_AFFINITY_SECONDS)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= MAX_AFFINITY_SECONDS:
        p.problem(f"sessionAffinityConfig timeoutSeconds {timeout!r} is not in 1-{MAX_AFFINITY_SECONDS}; "
                  f"using {DEFAULT_AFFINITY_SECONDS}")
        timeout = DEFAULT_AFFINITY_SECONDS
    raw_ranges = p.array_at(spec, "loadBalancerSourceRanges")
    hc_port = p.port(field(spec, "healthCheckNodePort", 0), "healthCheckNodePort", allow_zero=True)
    svc = Service(
        namespace=p.namespace,
        name=p.name,
        type=svc_type,
        cluster_ips=cluster_ips,
        ip_families=families or actual,
        ports=_service_ports(p, spec),
        external_ips=p.ips(p.array_at(spec, "externalIPs"), "externalIPs"),
        load_balancer_ips=_lb_ingress(p, obj),
        load_balancer_source_ranges=p.cidrs(raw_ranges, "loadBalancerSourceRanges"),
        lb_firewall=bool(raw_ranges),
        session_affinity=affinity,
        affinity_timeout=timeout,
        external_traffic_policy=p.choice(field(spec, "externalTrafficPolicy"), TRAFFIC_POLICIES, "Cluster",
                                         "externalTrafficPolicy"),
        internal_traffic_policy=p.choice(field(spec, "internalTrafficPolicy"), TRAFFIC_POLICIES, "Cluster",
                                         "internalTrafficPolicy"),
        health_check_node_port=hc_port or 0,
        external_host=_external_host(spec) if svc_type == "ExternalName" else "",
        labels=tuple(sorted(labels.items())),
        created=timestamp(field(field(obj, "metadata"), "creationTimestamp")),
        uid=uid if isinstance(uid := field(field(obj, "metadata"), "uid", ""), str) else "",
    )
    return svc, p.problems


# --- EndpointSlice -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointPort:
    name: str
    protocol: str
    port: int


class Endpoint(NamedTuple):
    """One endpoint of a slice (a named tuple: a full sync makes one per endpoint of the cluster, and a
    frozen dataclass is several times slower to make)."""

    addresses: tuple[str, ...]  # consumers use only the first (the API says they are fungible)
    ready: bool
    serving: bool
    terminating: bool
    node_name: str
    zone: str
    hostname: str  # a DNS label, or "" (DNS then names the endpoint after its address)
    target_pod: str  # the name of the Pod in targetRef, or ""


@dataclass(frozen=True)
class EndpointSlice:
    namespace: str
    name: str
    service_name: str  # "" when the slice belongs to no Service
    address_type: str  # IPv4 | IPv6 | FQDN
    ports: tuple[EndpointPort, ...]
    endpoints: tuple[Endpoint, ...]
    headless: bool = False  # labelled service.kubernetes.io/headless

    @property
    def family(self) -> int | None:
        return {"IPv4": 4, "IPv6": 6}.get(self.address_type)


def _slice_ports(p: Reader, obj: object) -> tuple[EndpointPort, ...]:
    ports: list[EndpointPort] = []
    for i, raw in enumerate(p.array_at(obj, "ports")):
        name = field(raw, "name", "")
        what = f"port {name or i}"
        if name != "" and not is_dns_label(name):
            p.problem(f"{what}: name {name!r} is not a valid DNS label; port skipped")
            continue
        if field(raw, "port") is None:
            continue  # a port without a number means "all ports", which Services cannot use
        protocol = p.protocol(field(raw, "protocol", "TCP"), what)
        number = p.port(field(raw, "port"), f"{what}: port")
        if protocol and number:
            ports.append(EndpointPort(name, protocol, number))
    return tuple(ports)


def _flag(conditions: object, key: str, default: bool) -> bool:
    value = field(conditions, key)
    return value if isinstance(value, bool) else default


def _endpoints(p: Reader, obj: object, family: int | None) -> tuple[Endpoint, ...]:
    endpoints: list[Endpoint] = []
    for raw in p.array_at(obj, "endpoints"):
        addresses = p.ips(p.array_at(raw, "addresses"), "endpoint addresses") if family else ()
        wrong = [a for a in addresses if family_of(a) != family]
        if wrong:
            p.problem(f"endpoint addresses {wrong} are not of addressType IPv{family}; skipped")
        addresses = tuple(a for a in addresses if a not in wrong)
        if not addresses:
            continue
        cond = field(raw, "conditions", {})
        ready = _flag(cond, "ready", True)  # unknown readiness means ready (API contract)
        node = field(raw, "nodeName", "")
        ref = field(raw, "targetRef")
        pod = field(ref, "name", "") if field(ref, "kind") == "Pod" else ""
        endpoints.append(Endpoint(
            addresses=addresses,
            ready=ready,
            serving=_flag(cond, "serving", ready),
            terminating=_flag(cond, "terminating", False),
            node_name=node if isinstance(node, str) else "",
            zone=zone if isinstance(zone := field(raw, "zone", ""), str) else "",
            hostname=p.dns_label(field(raw, "hostname"), "endpoint hostname"),
            target_pod=pod if isinstance(pod, str) else "",
        ))
    return tuple(endpoints)


def parse_endpoint_slice(obj: object) -> tuple[EndpointSlice | None, list[Problem]]:
    """The EndpointSlice view and its problems; FQDN slices parse but carry no endpoints."""
    p = Reader.of("EndpointSlice", obj)
    labels = p.metadata_map(obj, "labels")
    if not p.named(_is_object_name, "DNS subdomain"):
        return None, p.problems
    address_type = field(obj, "addressType", "")
    if address_type not in ("IPv4", "IPv6", "FQDN"):
        p.problem(f"addressType {address_type!r} is not IPv4, IPv6 or FQDN; slice skipped")
        return None, p.problems
    service = labels.get(SERVICE_NAME_LABEL, "")
    family = {"IPv4": 4, "IPv6": 6}.get(address_type)
    return EndpointSlice(
        namespace=p.namespace,
        name=p.name,
        service_name=service if is_dns_label(service) else "",
        address_type=address_type,
        ports=_slice_ports(p, obj),
        endpoints=_endpoints(p, obj, family),
        headless=HEADLESS_LABEL in labels,
    ), p.problems


# --- Node ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    name: str
    internal_ips: tuple[str, ...]
    external_ips: tuple[str, ...]
    pod_cidrs: tuple[str, ...]


def parse_node(obj: object) -> tuple[Node | None, list[Problem]]:
    """The Node view (addresses and podCIDRs) and its problems."""
    p = Reader.of("Node", obj, namespaced=False)
    if not p.named(_is_object_name, "DNS subdomain"):
        return None, p.problems
    status, spec = p.mapping_at(obj, "status"), p.mapping_at(obj, "spec")
    addresses = p.array_at(status, "addresses")

    def of_type(kind: str) -> tuple[str, ...]:
        return p.ips([field(a, "address") for a in addresses if field(a, "type") == kind], f"{kind} address")

    cidrs = p.array_at(spec, "podCIDRs") or ([c] if (c := field(spec, "podCIDR")) else [])
    return Node(p.name, of_type("InternalIP"), of_type("ExternalIP"), p.cidrs(cidrs, "podCIDRs")), p.problems
