"""Each Gateway's LoadBalancer Service, as data: what should exist, and the writes that get there.

A Gateway of knet's class that is accepted gets a Service `<gateway>-<class>` in its own namespace (GEP-1762:
namespaced resources a Gateway makes live beside it, labelled `gateway.networking.k8s.io/gateway-name`),
owned by the Gateway, so Kubernetes' garbage collector deletes it with the Gateway. It is of type
LoadBalancer, so knet's LoadBalancerIPPools give it the address the Gateway reports in `status.addresses`,
and it has one port per listener port of the Gateway's accepted listeners, any port number.

The nginx pods live in knet's own namespace, which a Service in the Gateway's namespace cannot select. So the
Service has no selector, and knet writes its EndpointSlices (one per address family): the ingress Service's
ready endpoints, each port leading to the nginx port the listener port has (`addresses.py`). The ingress
pods' own readiness therefore carries over to every Gateway.

The Gateway's `spec.infrastructure` labels and annotations go onto both (knet's own labels win); one removed
from the Gateway later stays on them until they are made again.

Only objects labelled `app.kubernetes.io/managed-by: knet-gateway` are knet's: a Service of that name that is
someone else's is never written (the create fails, and the Gateway stays without an address).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from operators.gateway.listeners import GatewayState
from operators.gateway.model import Status
from operators.gateway.views import GROUP
from operators.kube.services import SERVICE_NAME_LABEL, EndpointSlice

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "knet-gateway"
GATEWAY_LABEL = f"{GROUP}/gateway-name"
CLASS_LABEL = f"{GROUP}/gateway-class-name"
SLICE_MANAGER_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "gateway-nginx.knet.io"  # a label value, so no "/"; not the endpointslice controller's
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def service_name(gateway: str, gateway_class: str) -> str:
    """`<gateway>-<class>` as GEP-1762 suggests, where that is a valid Service name (a DNS-1035 label of at
    most 63 characters); else a valid prefix of it with a digest of both names."""
    name = f"{gateway}-{gateway_class}"
    if _DNS_1035.fullmatch(name):
        return name
    digest = hashlib.sha256(f"{gateway}/{gateway_class}".encode()).hexdigest()[:8]
    base = re.sub(r"[^a-z0-9-]", "-", name)[:50].strip("-")
    return f"{base if base[:1].isalpha() else 'gw-' + base}-{digest}"


@dataclass(frozen=True)
class Wanted:
    """One object (Service or EndpointSlice) as knet would create it."""

    kind: str
    namespace: str
    name: str
    body: Mapping[str, Any]

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.namespace, self.name


@dataclass(frozen=True)
class Held:
    """One of knet's objects as the watch last saw it: `managed` is the part knet writes whole (`managed`),
    `labels` and `annotations` all it has (knet's must be among them; others may add their own)."""

    kind: str
    namespace: str
    name: str
    managed: Any
    labels: frozenset[tuple[str, str]] = frozenset()
    annotations: frozenset[tuple[str, str]] = frozenset()

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.namespace, self.name


@dataclass(frozen=True)
class Change:
    verb: str  # create | patch | delete
    kind: str
    namespace: str
    name: str
    body: Mapping[str, Any] | None = None  # the object (create) or a merge patch (patch)


def _metadata(state: GatewayState, name: str, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Name, labels (the Gateway's `infrastructure.labels` under knet's own) and annotations (its
    `infrastructure.annotations`), and the Gateway as owner."""
    gw = state.gateway
    labels = {**dict(gw.infrastructure.labels), MANAGED_BY: MANAGER, GATEWAY_LABEL: gw.meta.name,
              CLASS_LABEL: gw.class_name, **(extra or {})}
    return {"name": name, "namespace": gw.meta.namespace, "labels": labels,
            "annotations": dict(gw.infrastructure.annotations),
            "ownerReferences": [{"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "name": gw.meta.name,
                                 "uid": gw.meta.uid, "controller": True}]}


def _ports(state: GatewayState, plan: Mapping[tuple[str, int], int]) -> list[tuple[str, int, int]]:
    """(port name, listener port, nginx port) for each listener port with an accepted listener."""
    out = {}
    for ls in state.listeners:
        nginx_port = plan.get((state.gateway.meta.key, ls.listener.port))
        if ls.accepted and nginx_port is not None:
            out[ls.listener.port] = (f"{ls.listener.protocol.lower()}-{ls.listener.port}", ls.listener.port,
                                     nginx_port)
    return [out[p] for p in sorted(out)]


def ingress_endpoints(slices: Iterable[EndpointSlice], service: tuple[str, str]) -> dict[int, list[dict[str, Any]]]:
    """family -> the ingress Service's endpoints as EndpointSlice entries (each address once)."""
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for s in sorted(slices, key=lambda s: s.name):
        if (s.namespace, s.service_name) != service or s.family is None:
            continue
        family = out.setdefault(s.family, {})
        for e in s.endpoints:
            entry: dict[str, Any] = {"addresses": [e.addresses[0]], "conditions": {
                "ready": e.ready, "serving": e.serving, "terminating": e.terminating}}
            family.setdefault(e.addresses[0], entry | ({"nodeName": e.node_name} if e.node_name else {}))
    return {f: [eps[a] for a in sorted(eps)] for f, eps in out.items()}


def wanted(status: Status, endpoints: Mapping[int, list[dict[str, Any]]]) -> list[Wanted]:
    """The Services and EndpointSlices of every accepted Gateway of ours that has a listener port to expose."""
    if status.ports is None:
        return []
    plan = dict(status.ports)
    out = []
    for state in status.gateways:
        ports = _ports(state, plan)
        if not state.accepted or not ports:
            continue
        gw = state.gateway
        name = service_name(gw.meta.name, gw.class_name)
        out.append(Wanted("Service", gw.meta.namespace, name, {
            "apiVersion": "v1", "kind": "Service", "metadata": _metadata(state, name),
            "spec": {"type": "LoadBalancer", "ports": [{"name": n, "port": p, "targetPort": t, "protocol": "TCP"}
                                                       for n, p, t in ports]}}))
        for family in sorted(endpoints) or [4]:
            slice_name = f"{name}-ipv{family}"
            out.append(Wanted("EndpointSlice", gw.meta.namespace, slice_name, {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": _metadata(state, slice_name, {SERVICE_NAME_LABEL: name,
                                                          SLICE_MANAGER_LABEL: SLICE_MANAGER}),
                "addressType": f"IPv{family}", "endpoints": list(endpoints.get(family, [])),
                "ports": [{"name": n, "port": t, "protocol": "TCP"} for n, _, t in ports]}))
    return out


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def managed(body: Mapping[str, Any]) -> Any:
    """The part of a Service or EndpointSlice that knet writes, comparable between what knet wants and what
    the API server returns (which adds defaults, node ports, cluster IPs)."""
    md = body.get("metadata") or {}
    owners = [{k: o.get(k) for k in ("apiVersion", "kind", "name", "uid")} for o in md.get("ownerReferences") or []]
    if body.get("kind") == "Service":
        spec = body.get("spec") or {}
        rest: Any = {"type": spec.get("type"), "ports": [
            {k: p.get(k) for k in ("name", "port", "targetPort", "protocol")} for p in spec.get("ports") or []]}
    else:
        rest = {"addressType": body.get("addressType"), "ports": [
            {k: p.get(k) for k in ("name", "port", "protocol")} for p in body.get("ports") or []],
            "endpoints": [{k: e[k] for k in ("addresses", "conditions", "nodeName") if k in e}
                          for e in body.get("endpoints") or []]}
    return _freeze({"owners": owners, **rest})


def _items(body: Mapping[str, Any], key: str) -> frozenset[tuple[str, str]]:
    return frozenset(((body.get("metadata") or {}).get(key) or {}).items())


def held_of(body: Mapping[str, Any]) -> Held | None:
    """knet's Service or EndpointSlice as watched; None for everyone else's."""
    md = body.get("metadata") or {}
    if (md.get("labels") or {}).get(MANAGED_BY) != MANAGER:
        return None
    return Held(str(body.get("kind") or ""), str(md.get("namespace") or ""), str(md.get("name") or ""),
                managed(body), _items(body, "labels"), _items(body, "annotations"))


def _patch(body: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch that sets what knet manages (lists are replaced whole, as merge patches do)."""
    md = body["metadata"]
    fields = ("spec",) if body["kind"] == "Service" else ("addressType", "endpoints", "ports")
    return {"metadata": {"labels": md["labels"], "annotations": md["annotations"],
                         "ownerReferences": md["ownerReferences"]}, **{f: body[f] for f in fields}}


def changes(want: Iterable[Wanted], held: Iterable[Held]) -> list[Change]:
    """The writes that make knet's objects what `want` says: create the missing, patch the different (only
    what knet manages), delete those no longer wanted. Services go first, so a new Service's slices follow it."""
    have = {h.key: h for h in held}
    out: list[Change] = []
    wanted_keys = set()
    for w in sorted(want, key=lambda w: (w.kind != "Service", w.namespace, w.name)):
        wanted_keys.add(w.key)
        h = have.get(w.key)
        if h is None:
            out.append(Change("create", w.kind, w.namespace, w.name, w.body))
        elif (h.managed != managed(w.body) or not _items(w.body, "labels") <= h.labels
              or not _items(w.body, "annotations") <= h.annotations):
            out.append(Change("patch", w.kind, w.namespace, w.name, _patch(w.body)))
    out += [Change("delete", h.kind, h.namespace, h.name) for k, h in sorted(have.items()) if k not in wanted_keys]
    return out


def gateway_addresses(status: Status, service_lb: Mapping[tuple[str, str], tuple[str, ...]],
                      ) -> dict[str, tuple[str, ...]]:
    """Gateway key -> the addresses of its own Service (none yet: the pool has not given one)."""
    return {s.gateway.meta.key: tuple(service_lb.get((s.gateway.meta.namespace, service_name(
        s.gateway.meta.name, s.gateway.class_name)), ())) for s in status.gateways}
