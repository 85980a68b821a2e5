"""Compact views of Services, EndpointSlices and Pods: only what DNS answers need.

Services and Pods are parsed by `operators.kube.services` / `operators.kube.pods`; this module
adds what those views do not carry: a Service's `spec.externalName`, an endpoint's `hostname` and
`targetRef`, and a Pod's `spec.hostname` / `spec.subdomain`. EndpointSlice endpoints are read here
(with the shared address and label validators) because the shared view drops hostname and targetRef.
Every name is lowercased, so the store compares names case-insensitively by plain dict lookups.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from operators.dns.names import normalize_name
from operators.kube import pods as kube_pods
from operators.kube import services as kube_services
from operators.kube.services import Problem, field, is_dns_label, parse_ip


@dataclass(frozen=True, slots=True)
class Port:
    name: str  # "" for an unnamed port
    protocol: str  # tcp | udp | sctp, as it appears in `_proto` labels
    port: int


@dataclass(frozen=True, slots=True)
class DNSService:
    namespace: str
    name: str
    cluster_ips: tuple[str, ...]  # empty for headless and ExternalName Services
    headless: bool
    external_name: str  # the CNAME target of an ExternalName Service, else ""
    ports: tuple[Port, ...]


@dataclass(frozen=True, slots=True)
class DNSEndpoint:
    addresses: tuple[str, ...]
    hostname: str  # the endpoint's `hostname`, or ""
    pod: str  # the name of the Pod in `targetRef`, or ""
    ready: bool


@dataclass(frozen=True, slots=True)
class DNSSlice:
    namespace: str
    name: str
    service: str
    ports: tuple[Port, ...]
    endpoints: tuple[DNSEndpoint, ...]


@dataclass(frozen=True, slots=True)
class DNSPod:
    namespace: str
    name: str
    ips: tuple[str, ...]  # empty once the pod has finished: its addresses may be handed on
    hostname: str  # spec.hostname when spec.subdomain is set too, else ""
    subdomain: str


def _ports(raw_ports: Any) -> tuple[Port, ...]:
    return tuple(Port(p.name.lower(), p.protocol.lower(), p.port) for p in raw_ports)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_service(obj: object) -> tuple[DNSService | None, list[Problem]]:
    """The Service's DNS view and its problems; None when it can have no records."""
    svc, problems = kube_services.parse_service(obj)
    if svc is None:
        return None, problems
    target = ""
    if svc.external_name:
        raw = field(field(obj, "spec"), "externalName")
        target = normalize_name(raw) or ""
        if not target or _is_ip(target):
            problems.append(Problem("Service", svc.namespace, svc.name,
                                    f"externalName {raw!r} is not a valid DNS name; no records"))
            return None, problems
    view = DNSService(
        namespace=svc.namespace,
        name=svc.name,
        cluster_ips=() if svc.headless else svc.cluster_ips,
        headless=svc.headless,
        external_name=target,
        ports=_ports(svc.ports),
    )
    return view, problems


def _get(obj: object, key: str, default: Any = None) -> Any:
    """`field`, with a fast path for camelCase API JSON (slices carry thousands of endpoints)."""
    if isinstance(obj, dict) and key in obj:
        value = obj[key]
        return default if value is None else value
    return field(obj, key, default)


def _endpoint(raw: object, valid: set[str], problems: list[Problem], where: tuple[str, str],
              ) -> DNSEndpoint | None:
    """One endpoint; `valid` holds the addresses the shared parser accepted (normalised)."""
    addresses: list[str] = []
    values = _get(raw, "addresses", [])
    for value in values if isinstance(values, list) else []:
        ip = value if value in valid else str(parse_ip(value))  # normalise the rare non-canonical form
        if ip in valid and ip not in addresses:
            addresses.append(ip)
    if not addresses:
        return None  # the shared parser has reported why
    hostname = _get(raw, "hostname", "")
    if hostname and not is_dns_label(hostname):
        problems.append(Problem("EndpointSlice", *where,
                                f"endpoint hostname {hostname!r} is not a DNS label; using the address form"))
        hostname = ""
    ref = _get(raw, "targetRef", {})
    pod = _get(ref, "name", "") if _get(ref, "kind") == "Pod" else ""
    ready = _get(_get(raw, "conditions", {}), "ready")
    return DNSEndpoint(
        addresses=tuple(addresses),
        hostname=hostname if isinstance(hostname, str) else "",
        pod=pod if isinstance(pod, str) else "",
        ready=ready if isinstance(ready, bool) else True,  # unknown readiness means ready (API contract)
    )


def parse_slice(obj: object) -> tuple[DNSSlice | None, list[Problem]]:
    """The slice's DNS view (IPv4/IPv6 slices of a Service) and its problems; None if it has no use."""
    view, problems = kube_services.parse_endpoint_slice(obj)
    if view is None or view.family is None or not view.service_name:
        return None, problems
    valid = {ip for ep in view.endpoints for ip in ep.addresses}
    raw_endpoints = _get(obj, "endpoints", [])
    endpoints = []
    for raw in raw_endpoints if isinstance(raw_endpoints, list) else []:
        ep = _endpoint(raw, valid, problems, (view.namespace, view.name))
        if ep is not None:
            endpoints.append(ep)
    dns_slice = DNSSlice(view.namespace, view.name, view.service_name, _ports(view.ports), tuple(endpoints))
    return dns_slice, problems


def parse_pod(obj: dict[str, Any]) -> tuple[DNSPod | None, list[Problem]]:
    """The Pod's DNS view and its problems; None when its namespace or name is not a DNS name."""
    pod, messages = kube_pods.parse_pod(obj)
    prefix = f"Pod {pod.namespace}/{pod.name}: "
    problems = [Problem("Pod", pod.namespace, pod.name, m.removeprefix(prefix)) for m in messages]
    if not is_dns_label(pod.namespace) or normalize_name(pod.name) is None:
        problems.append(Problem("Pod", pod.namespace, pod.name,
                                "namespace or name is not a DNS name; skipped"))
        return None, problems
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    hostname, subdomain = spec.get("hostname") or "", spec.get("subdomain") or ""
    if not (is_dns_label(hostname) and is_dns_label(subdomain)):
        if hostname and subdomain:
            problems.append(Problem("Pod", pod.namespace, pod.name,
                                    "hostname or subdomain is not a DNS label"))
        hostname = subdomain = ""
    ips = () if pod.phase in kube_pods.TERMINAL_PHASES else pod.ips
    return DNSPod(pod.namespace, pod.name, ips, hostname, subdomain), problems
