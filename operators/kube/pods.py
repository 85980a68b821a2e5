"""Frozen views of Pods and Namespaces: only what networking needs, parsed from API dicts (camelCase).

Parsing never raises: malformed fields are dropped with a problem, so one odd object cannot stop a sync.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from operators.kube.selectors import Labels, valid_label_key, valid_label_value

PROTOCOLS = ("TCP", "UDP", "SCTP")
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

    @property
    def key(self) -> str:
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


def _labels(md: dict[str, Any], where: str, problems: list[str]) -> dict[str, str]:
    raw = md.get("labels") or {}
    if not isinstance(raw, dict):
        problems.append(f"{where}: metadata.labels is not an object")
        return {}
    good = {k: v for k, v in raw.items() if valid_label_key(k) and valid_label_value(v)}
    if len(good) != len(raw):
        problems.append(f"{where}: ignored invalid labels {sorted(set(map(str, raw)) - set(good))}")
    return good


def _ips(obj: dict[str, Any], where: str, problems: list[str]) -> tuple[str, ...]:
    status = obj.get("status") or {}
    raw = [e.get("ip") for e in status.get("podIPs") or [] if isinstance(e, dict)]
    if not raw and status.get("podIP"):
        raw = [status["podIP"]]
    out: list[str] = []
    for ip in raw:
        try:
            out.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            problems.append(f"{where}: ignored invalid pod IP {ip!r}")
    return tuple(dict.fromkeys(out))


def _ports(spec: dict[str, Any], where: str, problems: list[str]) -> tuple[ContainerPort, ...]:
    out: set[ContainerPort] = set()
    for c in spec.get("containers") or []:
        for p in (c.get("ports") or []) if isinstance(c, dict) else []:
            number, proto = p.get("containerPort"), p.get("protocol") or "TCP"
            if not (isinstance(number, int) and 0 < number < 65536 and proto in PROTOCOLS):
                problems.append(f"{where}: ignored invalid container port {p!r}")
                continue
            name = p.get("name")
            out.add(ContainerPort(name if isinstance(name, str) else "", number, proto))
    return tuple(sorted(out, key=lambda p: (p.name, p.protocol, p.port)))


def parse_pod(obj: dict[str, Any]) -> tuple[Pod, list[str]]:
    """A Pod view from an API dict, with problems for the parts that had to be dropped."""
    md = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    where = f"Pod {md.get('namespace')}/{md.get('name')}"
    problems: list[str] = []
    pod = Pod(
        namespace=str(md.get("namespace") or "default"),
        name=str(md.get("name") or ""),
        labels=Labels(_labels(md, where, problems)),
        ips=_ips(obj, where, problems),
        node_name=str(spec.get("nodeName") or ""),
        host_network=bool(spec.get("hostNetwork")),
        phase=str((obj.get("status") or {}).get("phase") or "Pending"),
        ports=_ports(spec, where, problems),
    )
    return pod, problems


def namespace(name: str, labels: dict[str, str] | None = None) -> Namespace:
    """A Namespace view; the API server always sets `kubernetes.io/metadata.name` to the name."""
    return Namespace(name, Labels({**(labels or {}), NAMESPACE_NAME_LABEL: name}))


def parse_namespace(obj: dict[str, Any]) -> tuple[Namespace, list[str]]:
    """A Namespace view from an API dict."""
    md = obj.get("metadata") or {}
    problems: list[str] = []
    name = str(md.get("name") or "")
    return namespace(name, _labels(md, f"Namespace {name}", problems)), problems
