"""Frozen views of Pods and Namespaces: only what networking needs, parsed from API dicts.

Parsing never raises (`operators.kube.parse`): malformed fields are dropped with a `Problem`, so one odd
object cannot stop a sync. NetworkPolicy and DNS read pods with the same `parse_pod`; each decides
which problems are its business to report.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from operators.kube.parse import PROTOCOLS, Problem, Reader, field, is_port
from operators.kube.selectors import Labels, valid_label_key, valid_label_value

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class ContainerPort:
    """A declared container port; `name` is what NetworkPolicy named ports resolve against."""

    name: str
    port: int
    protocol: str


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: Labels
    ips: tuple[str, ...]
    node_name: str
    host_network: bool
    phase: str
    ports: tuple[ContainerPort, ...]
    hostname: str  # spec.hostname, a DNS label, or ""
    subdomain: str  # spec.subdomain, a DNS label, or ""

    @cached_property
    def key(self) -> str:  # cached: the NetworkPolicy compiler looks up every pod by key on every sync
        return f"{self.namespace}/{self.name}"

    @property
    def has_pod_network(self) -> bool:
        """True for a live pod with its own addresses: the only kind NetworkPolicy selects.

        hostNetwork pods share the node's address, and finished pods may have handed theirs on.
        """
        return not self.host_network and self.phase not in TERMINAL_PHASES and bool(self.ips)

    def named_ports(self, name: str, protocol: str) -> tuple[int, ...]:
        """Port numbers that the pod's containers declare under `name` for `protocol`."""
        return tuple(sorted({p.port for p in self.ports if p.name == name and p.protocol == protocol}))


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Labels


def _labels(p: Reader, md: object) -> dict[str, str]:
    raw = p.mapping(field(md, "labels"), "metadata.labels")
    good = {k: v for k, v in raw.items() if valid_label_key(k) and valid_label_value(v)}
    if len(good) != len(raw):
        p.problem(f"ignored invalid labels {sorted(set(map(str, raw)) - set(good))}")
    return good


def _ips(p: Reader, status: dict[str, Any]) -> tuple[str, ...]:
    raw = [field(e, "ip") for e in p.array_at(status, "podIPs") if isinstance(e, Mapping)]
    if not raw and (single := field(status, "podIP")):
        raw = [single]
    out: list[str] = []
    for ip in raw:
        try:
            out.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            p.problem(f"ignored invalid pod IP {ip!r}")
    return tuple(dict.fromkeys(out))


def _ports(p: Reader, spec: dict[str, Any]) -> tuple[ContainerPort, ...]:
    out: set[ContainerPort] = set()
    for container in p.array_at(spec, "containers"):
        for port in p.array_at(container, "ports"):
            number, proto = field(port, "containerPort"), field(port, "protocol") or "TCP"
            if not (is_port(number) and proto in PROTOCOLS):
                p.problem(f"ignored invalid container port {port!r}")
                continue
            name = field(port, "name")
            out.add(ContainerPort(name if isinstance(name, str) else "", number, proto))
    return tuple(sorted(out, key=lambda c: (c.name, c.protocol, c.port)))


def parse_pod(obj: object) -> tuple[Pod, list[Problem]]:
    """A Pod view from an API dict, with a `Problem` for each part that had to be dropped."""
    md = field(obj, "metadata")
    ns, name = str(field(md, "namespace") or "default"), str(field(md, "name") or "")
    p = Reader("Pod", name, ns)
    spec, status = p.mapping_at(obj, "spec"), p.mapping_at(obj, "status")
    pod = Pod(
        namespace=ns,
        name=name,
        labels=Labels(_labels(p, md)),
        ips=_ips(p, status),
        node_name=str(field(spec, "nodeName") or ""),
        host_network=bool(field(spec, "hostNetwork")),
        phase=str(field(status, "phase") or "Pending"),
        ports=_ports(p, spec),
        hostname=p.dns_label(field(spec, "hostname"), "hostname"),
        subdomain=p.dns_label(field(spec, "subdomain"), "subdomain"),
    )
    return pod, p.problems


def namespace(name: str, labels: dict[str, str] | None = None) -> Namespace:
    """A Namespace view; the API server always sets `kubernetes.io/metadata.name` to the name."""
    return Namespace(name, Labels({**(labels or {}), NAMESPACE_NAME_LABEL: name}))


def parse_namespace(obj: object) -> tuple[Namespace, list[Problem]]:
    """A Namespace view from an API dict."""
    md = field(obj, "metadata")
    name = str(field(md, "name") or "")
    p = Reader("Namespace", name)
    return namespace(name, _labels(p, md)), p.problems
