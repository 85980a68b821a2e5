"""The status writes the controller makes to GatewayClasses, Gateways and HTTPRoutes, decided as data.

`status_patches` compares the model's `Status` with each object's status as the watch last saw it and
returns a merge patch only for objects whose status would change, so a resync writes nothing (no
resourceVersion churn, no watch events that wake every ingress replica again). Each patch names the
resourceVersion it was computed from: a replica that computed from an older object gets a conflict and
tries again at its next sync. lastTransitionTime moves only when a condition's status changes.

What each kind gets:
- GatewayClass (only ours): `conditions`.
- Gateway: `conditions`, `listeners` (name, supportedKinds, attachedRoutes, conditions) and `addresses`: its
  own LoadBalancer Service's (`services.py`), or where Gateways share the ingress's address, that Service's
  addresses, as for an Ingress's `status.loadBalancer`.
- HTTPRoute: one `parents` entry per parentRef to a Gateway of ours, with knet's controllerName and the
  parentRef as the route spells it; other controllers' entries are kept as they are, and knet's entries
  for parents the route no longer names are dropped.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from operators.gateway.conditions import Condition, condition, to_status
from operators.gateway.listeners import GatewayState
from operators.gateway.model import Status
from operators.gateway.routes import ParentStatus
from operators.gateway.views import CONTROLLER, GROUP
from operators.kube.conditions import with_transitions


@dataclass(frozen=True)
class Seen:
    """An object as the watch last saw it: what a status decision compares with and a patch must name."""

    resource_version: str
    generation: int
    status: Mapping[str, Any] = field(default_factory=dict)
    parent_refs: tuple[Mapping[str, Any], ...] = ()  # HTTPRoute spec.parentRefs as written


@dataclass(frozen=True)
class StatusPatch:
    kind: str  # GatewayClass | Gateway | HTTPRoute
    namespace: str
    name: str
    body: Mapping[str, Any]  # a merge patch of the status subresource


def seen_of(body: Mapping[str, Any]) -> Seen:
    """The parts of a watched object that status decisions need (kept small: the index holds one per object)."""
    md = body.get("metadata") or {}
    refs = (body.get("spec") or {}).get("parentRefs") or []
    generation = md.get("generation")
    return Seen(str(md.get("resourceVersion") or ""), generation if isinstance(generation, int) else 0,
                dict(body.get("status") or {}), tuple(r for r in refs if isinstance(r, Mapping)))


def _conditions(conds: Iterable[Condition], old: object, generation: int, now: datetime.datetime,
                ) -> list[dict[str, Any]]:
    fresh = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in to_status(conds, generation, "")]
    return with_transitions(fresh, old if isinstance(old, list) else [], now)


def _by_name(items: object, key: str) -> dict[Any, Mapping[str, Any]]:
    return {i.get(key): i for i in items if isinstance(i, Mapping)} if isinstance(items, list) else {}


def address(value: str) -> dict[str, str]:
    try:
        return {"type": "IPAddress", "value": str(ipaddress.ip_address(value))}
    except ValueError:
        return {"type": "Hostname", "value": value}


def gateway_status(state: GatewayState, attached: Mapping[tuple[str, str], int], addresses: Iterable[str],
                   old: Mapping[str, Any], generation: int, now: datetime.datetime,
                   own_address: bool = False) -> dict[str, Any]:
    """The Gateway's status; with `own_address` (a Service of its own), not Programmed until it has an address
    (the spec's AddressNotAssigned)."""
    addresses = list(addresses)
    if own_address and not addresses and state.accepted:
        state = replace(state, conditions=tuple(
            condition("Programmed", False, "AddressNotAssigned", "its LoadBalancer Service has no address yet")
            if c.type == "Programmed" else c for c in state.conditions))
    old_listeners = _by_name(old.get("listeners"), "name")
    listeners = [{"name": ls.listener.name,
                  "supportedKinds": [{"group": g, "kind": k} for g, k in ls.kinds],
                  "attachedRoutes": attached.get(ls.key, 0),
                  "conditions": _conditions(ls.conditions, (old_listeners.get(ls.listener.name) or {}).get(
                      "conditions"), generation, now)} for ls in state.listeners]
    return {"conditions": _conditions(state.conditions, old.get("conditions"), generation, now),
            "listeners": listeners, "addresses": [address(a) for a in addresses]}


def _resolved(ref: Mapping[str, Any], namespace: str) -> tuple[str, str, str, str, str, int | None]:
    """A parentRef with the API's defaults filled in, to find the one a `ParentStatus` is about."""
    port = ref.get("port")
    return (str(ref.get("group", GROUP)), str(ref.get("kind", "Gateway")), str(ref.get("namespace") or namespace),
            str(ref.get("name") or ""), str(ref.get("sectionName") or ""), port if isinstance(port, int) else None)


def parent_ref(p: ParentStatus, written: Iterable[Mapping[str, Any]], namespace: str) -> dict[str, Any]:
    """The parentRef as the route spells it (the spec's status echoes it), else with every field named."""
    want = (p.parent.group, p.parent.kind, p.parent.namespace, p.parent.name, p.parent.section, p.parent.port)
    found = next((dict(r) for r in written if _resolved(r, namespace) == want), None)
    if found is not None:
        return found
    ref: dict[str, Any] = {"group": p.parent.group, "kind": p.parent.kind, "namespace": p.parent.namespace,
                           "name": p.parent.name}
    return ref | ({"sectionName": p.parent.section} if p.parent.section else {}) | (
        {"port": p.parent.port} if p.parent.port is not None else {})


def route_status(parents: Iterable[ParentStatus], seen: Seen, namespace: str, now: datetime.datetime,
                 ) -> dict[str, Any]:
    old = [e for e in seen.status.get("parents") or [] if isinstance(e, Mapping)]
    others = [dict(e) for e in old if e.get("controllerName") != CONTROLLER]
    ours = {repr(sorted((e.get("parentRef") or {}).items())): e for e in old if e.get("controllerName") == CONTROLLER}
    entries = []
    for p in parents:
        ref = parent_ref(p, seen.parent_refs, namespace)
        before = ours.get(repr(sorted(ref.items()))) or {}
        entries.append({"parentRef": ref, "controllerName": CONTROLLER,
                        "conditions": _conditions(p.conditions, before.get("conditions"), seen.generation, now)})
    return {"parents": others + entries}


def _patch(kind: str, key: str, seen: Seen, want: dict[str, Any]) -> StatusPatch | None:
    if all(seen.status.get(k) == v for k, v in want.items()):
        return None
    namespace, _, name = key.rpartition("/")
    return StatusPatch(kind, namespace, name, {"metadata": {"resourceVersion": seen.resource_version},
                                                "status": want})


def status_patches(status: Status, seen: Mapping[tuple[str, str], Seen], addresses: tuple[str, ...],
                   now: datetime.datetime, own: Mapping[str, tuple[str, ...]] | None = None) -> list[StatusPatch]:
    """The status patches that would change something. `seen`: (kind, key) -> the object as last watched;
    an object the watch has not seen yet is left for the next sync. `addresses`: every Gateway's, or with
    `own` (Gateway key -> the addresses of its own Service), each Gateway's own."""
    out: list[StatusPatch | None] = []
    for name, conds in status.classes:
        if (s := seen.get(("GatewayClass", name))) is not None:
            out.append(_patch("GatewayClass", name, s, {
                "conditions": _conditions(conds, s.status.get("conditions"), s.generation, now)}))
    attached = dict(status.attached)
    for state in status.gateways:
        key = state.gateway.meta.key
        if (s := seen.get(("Gateway", key))) is not None:
            mine = addresses if own is None else own.get(key, ())
            out.append(_patch("Gateway", key, s, gateway_status(state, attached, mine, s.status, s.generation,
                                                                 now, own is not None)))
    routes = dict(status.routes)
    for (kind, key), s in sorted(seen.items()):
        mentioned = any(isinstance(e, Mapping) and e.get("controllerName") == CONTROLLER
                        for e in s.status.get("parents") or [])
        if kind == "HTTPRoute" and (key in routes or mentioned):
            out.append(_patch("HTTPRoute", key, s, route_status(routes.get(key, ()), s, key.partition("/")[0],
                                                                now)))
    return [p for p in out if p is not None]
