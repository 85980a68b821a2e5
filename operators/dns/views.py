"""Compact views of Services, EndpointSlices and Pods: only what DNS answers need.

Objects are parsed by the shared views (`operators.kube.services`, `operators.kube.pods`); this module
keeps what DNS uses of them and applies DNS's own rules: an ExternalName target must be a domain name
(not an address), a headless Service has no cluster IPs, a Pod's hostname names it only together with
a subdomain, and a finished Pod has no addresses. Every name is lowercased, so the store compares
names case-insensitively by plain dict lookups.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from operators.dns.names import normalize_name
from operators.kube import pods as kube_pods
from operators.kube import services as kube_services
from operators.kube.parse import Problem, is_dns_label


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
    subdomain: str  # spec.subdomain when spec.hostname is set too, else ""


def _ports(ports: Iterable[kube_services.ServicePort | kube_services.EndpointPort]) -> tuple[Port, ...]:
    return tuple(Port(p.name.lower(), p.protocol.lower(), p.port) for p in ports)


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
        target = normalize_name(svc.external_host) or ""
        if not target or _is_ip(target):
            problems.append(Problem("Service", svc.namespace, svc.name,
                                    f"externalName {svc.external_host!r} is not a valid DNS name; no records"))
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


def parse_slice(obj: object) -> tuple[DNSSlice | None, list[Problem]]:
    """The slice's DNS view (IPv4/IPv6 slices of a Service) and its problems; None if it has no use."""
    view, problems = kube_services.parse_endpoint_slice(obj)
    if view is None or view.family is None or not view.service_name:
        return None, problems
    endpoints = tuple(DNSEndpoint(ep.addresses, ep.hostname, ep.target_pod, ep.ready) for ep in view.endpoints)
    return DNSSlice(view.namespace, view.name, view.service_name, _ports(view.ports), endpoints), problems


def parse_pod(obj: object) -> tuple[DNSPod | None, list[Problem]]:
    """The Pod's DNS view and its problems; None when its namespace or name is not a DNS name."""
    pod, problems = kube_pods.parse_pod(obj)
    if not is_dns_label(pod.namespace) or normalize_name(pod.name) is None:
        problems.append(Problem("Pod", pod.namespace, pod.name,
                                "namespace or name is not a DNS name; skipped"))
        return None, problems
    hostname, subdomain = (pod.hostname, pod.subdomain) if pod.hostname and pod.subdomain else ("", "")
    ips = () if pod.phase in kube_pods.TERMINAL_PHASES else pod.ips
    return DNSPod(pod.namespace, pod.name, ips, hostname, subdomain), problems
