"""HTTPRoutes: which listeners each attaches to (per parentRef), what each rule does, and the route's
conditions per parent. Pure: objects in, frozen decisions out; the servers are made in `model.py`.

Attaching, per parentRef to a Gateway of knet's class: the listeners named by sectionName and port (all when
neither is set) that are served; of those, the ones whose `allowedRoutes` take an HTTPRoute from the route's
namespace (Same, All, or a namespace label Selector); of those, the ones whose hostname intersects the
route's hostnames. None left gives `Accepted: False` with NoMatchingParent, NotAllowedByListeners or
NoMatchingListenerHostname, in that order.

A rule whose match or filter knet refuses is left out (`Accepted: False, UnsupportedValue` when no rule is
left; `PartiallyInvalid` otherwise), and never changes the other rules or routes. A backendRef that is not
a Service, names no Service or port, or crosses namespaces without a ReferenceGrant is `ResolvedRefs: False`
with the spec's reason, and its share of the rule's traffic answers 500.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from operators.gateway import filters, hostnames, matches
from operators.gateway.conditions import Condition, condition
from operators.gateway.listeners import GatewayState, ListenerState
from operators.gateway.views import GROUP, HTTPRoute, Match, Namespace, ObjectRef, ReferenceGrant, labels_of, permitted
from operators.ingress.routing import Condition as RequestCondition
from operators.kube.services import Service


@dataclass(frozen=True)
class CompiledMatch:
    match: Match
    path_regex: str
    conditions: tuple[RequestCondition, ...]


@dataclass(frozen=True)
class Backend:
    ref: ObjectRef
    why: str  # "" when usable; else the ResolvedRefs reason
    message: str = ""


@dataclass(frozen=True)
class CompiledRule:
    route: HTTPRoute
    index: int
    matches: tuple[CompiledMatch, ...]
    parts: filters.Parts
    backends: tuple[Backend, ...]
    mirrors: tuple[Backend, ...]
    timeout_ms: int


@dataclass(frozen=True)
class Attachment:
    """A route on one listener, for the hostnames they share ("" for any)."""

    route: HTTPRoute
    listener: ListenerState
    hostnames: tuple[str, ...]
    rules: tuple[CompiledRule, ...]


@dataclass(frozen=True)
class ParentStatus:
    parent: ObjectRef
    conditions: tuple[Condition, ...]


def _backend(route: HTTPRoute, ref: ObjectRef, services: dict[tuple[str, str], Service],
             grants: list[ReferenceGrant]) -> Backend:
    if (ref.group, ref.kind) != ("", "Service"):
        return Backend(ref, "InvalidKind", f"backendRef {ref.group or 'core'}/{ref.kind} is not a Service")
    if not permitted(grants, (GROUP, "HTTPRoute", route.meta.namespace), ref):
        return Backend(ref, "RefNotPermitted", f"no ReferenceGrant in {ref.namespace} lets HTTPRoutes of "
                                               f"{route.meta.namespace} use Service {ref.name}")
    svc = services.get((ref.namespace, ref.name))
    if svc is None:
        return Backend(ref, "BackendNotFound", f"Service {ref.namespace}/{ref.name} not found")
    if ref.port is None or not any(p.port == ref.port and p.protocol == "TCP" for p in svc.ports) \
            or svc.external_name:
        return Backend(ref, "BackendNotFound", f"Service {ref.namespace}/{ref.name} has no TCP port {ref.port}")
    return Backend(ref, "")


def compile_rule(route: HTTPRoute, index: int, services: dict[tuple[str, str], Service],
                 grants: list[ReferenceGrant]) -> CompiledRule | str:
    """The rule made ready to render, or why knet refuses it."""
    rule = route.rules[index]
    compiled = []
    for m in rule.matches:
        regex, conds = matches.path_regex(m), matches.conditions(m)
        if regex is None:
            return f"rule {index}: path {m.path!r} ({m.path_type}) is not accepted"
        if conds is None:
            return f"rule {index}: a header, query parameter or method match is not accepted"
        compiled.append(CompiledMatch(m, regex, conds))
    try:
        parts = filters.parts(rule.filters)
        timeout = filters.timeout_ms(rule.timeout_request, rule.timeout_backend)
        if any(b.filters for b in rule.backends):
            raise filters.Refused("filters on a backendRef are not supported")
        if parts.path and parts.path[0] == "ReplacePrefixMatch" and any(
                m.path_type != "PathPrefix" for m in rule.matches):
            raise filters.Refused("ReplacePrefixMatch needs PathPrefix matches")
    except filters.Refused as e:
        return f"rule {index}: {e}"
    mirrors = tuple(_backend(route, ObjectRef(r.group, r.kind, r.namespace or route.meta.namespace, r.name, r.port,
                                              weight=r.weight),
                             services, grants) for r in parts.mirrors)
    return CompiledRule(route, index, tuple(compiled), parts,
                        tuple(_backend(route, b, services, grants) for b in rule.backends), mirrors, timeout)


def _allowed(route: HTTPRoute, ls: ListenerState, namespaces: dict[str, Namespace]) -> bool:
    if (GROUP, "HTTPRoute") not in ls.kinds:
        return False
    how, gw_ns, ns = ls.listener.namespaces_from, ls.gateway.meta.namespace, route.meta.namespace
    if how == "All":
        return True
    if how == "Selector":
        return ls.listener.selector is not None and ls.listener.selector.matches(labels_of(namespaces, ns))
    return ns == gw_ns


def attach(routes: Iterable[HTTPRoute], gateways: list[GatewayState], services: Iterable[Service],
           grants: Iterable[ReferenceGrant], namespaces: Iterable[Namespace],
           ) -> tuple[list[Attachment], dict[str, tuple[ParentStatus, ...]]]:
    """Every route's attachments (oldest route first) and its status per parentRef of knet's Gateways."""
    by_gateway = {g.gateway.meta.key: g for g in gateways}
    svc = {(s.namespace, s.name): s for s in services}
    grant_list, ns_map = list(grants), {n.name: n for n in namespaces}
    attachments: list[Attachment] = []
    statuses: dict[str, tuple[ParentStatus, ...]] = {}
    for route in sorted(routes, key=lambda r: r.meta.age_key):
        results = [compile_rule(route, i, svc, grant_list) for i in range(len(route.rules))]
        rules = tuple(r for r in results if isinstance(r, CompiledRule))
        refused = [r for r in results if isinstance(r, str)]
        bad_hosts = [h for h in route.hostnames if not hostnames.valid(h)]
        hosts = tuple(h for h in route.hostnames if hostnames.valid(h))
        parents = []
        for parent in route.parents:
            state = by_gateway.get(f"{parent.namespace}/{parent.name}")
            if (parent.group, parent.kind) != (GROUP, "Gateway") or state is None:
                continue  # not a Gateway of ours: another controller reports on it
            conds, taken = _parent(route, parent, state, hosts, ns_map, rules, refused + [
                f"hostname {h!r} is not valid" for h in bad_hosts])
            parents.append(ParentStatus(parent, conds))
            attachments.extend(taken)
        if parents:
            statuses[route.meta.key] = tuple(parents)
    return attachments, statuses


def _parent(route: HTTPRoute, parent: ObjectRef, state: GatewayState, hosts: tuple[str, ...],
            namespaces: dict[str, Namespace], rules: tuple[CompiledRule, ...],
            refused: list[str]) -> tuple[tuple[Condition, ...], list[Attachment]]:
    named = [ls for ls in state.listeners if state.accepted and ls.accepted
             and (not parent.section or ls.listener.name == parent.section)
             and (parent.port is None or ls.listener.port == parent.port)]
    allowed = [ls for ls in named if _allowed(route, ls, namespaces)]
    taken: list[Attachment] = []
    for ls in allowed:
        shared = tuple(sorted({h for h in (hostnames.intersect(ls.listener.hostname, r) for r in hosts or ("",))
                               if h is not None}))
        if shared and rules:
            taken.append(Attachment(route, ls, shared, rules))
    resolved = next((b for r in rules for b in r.backends + r.mirrors if b.why), None)
    refs = condition("ResolvedRefs", resolved is None, resolved.why if resolved else "ResolvedRefs",
                     resolved.message if resolved else "")
    if not named:
        accepted = condition("Accepted", False, "NoMatchingParent",
                             f"Gateway {state.gateway.meta.key} has no served listener "
                             f"{parent.section or ''}{f' on port {parent.port}' if parent.port else ''}".rstrip())
    elif not allowed:
        accepted = condition("Accepted", False, "NotAllowedByListeners",
                             "no listener allows HTTPRoutes from this namespace")
    elif not any(hostnames.intersect(ls.listener.hostname, h) is not None for ls in allowed for h in hosts or ("",)):
        accepted = condition("Accepted", False, "NoMatchingListenerHostname",
                             "no listener hostname matches the route's hostnames")
    elif not rules:
        accepted = condition("Accepted", False, "UnsupportedValue", "; ".join(refused))
    else:
        accepted = condition("Accepted", True, "Accepted")
    conds = [accepted, refs]
    if rules and refused and accepted.status:
        conds.append(condition("PartiallyInvalid", True, "UnsupportedValue", "; ".join(refused)))
    return tuple(conds), taken if accepted.status else []
