"""Gateway API objects (with the Ingresses beside them) -> the Ingress controller's routing model, and the
status the controller will write.

One nginx serves both. `build_model` runs the Ingress model (`operators.ingress.model.build_model`) with a
hook that adds one nginx server per (hostname, port) the Gateways' served listeners need, so both share the
upstreams, certificates, renderer and nginx:

- Request routing follows listener isolation: a request is handled by the most specific listener hostname
  on its port, and only routes attached to that listener (or to a listener with the same hostname on the
  same port in another Gateway of knet's) match it; their rules are tried in the spec's precedence, host
  specificity first (`matches.py`). A host with no match answers 404.
- Each Gateway on its own address (`own_ports`, see `addresses.py`): its listeners are served on nginx ports
  of their own, so the servers are made per nginx port, and no two Gateways, nor a Gateway and an Ingress,
  share one. Without it, every Gateway's listener is served on its own port number, shared with the other
  Gateways and with the Ingresses:
- Ingress and Gateway on one host and port (the Ingress controller's HTTP and HTTPS ports): the oldest
  claim wins that host on that port, a claim being an Ingress rule for the host (the oldest Ingress with
  one) or an HTTPRoute attached there naming that host (the oldest such route; a route without hostnames
  claims the catch-all `""`, and a wildcard claims only itself). The
  loser keeps its other hosts and ports, and each of its objects gets a problem (an Event) naming the
  winner. Ties go to the Ingress, which was there first in knet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from operators.gateway import filters, hostnames, matches
from operators.gateway.addresses import allocate
from operators.gateway.conditions import Condition
from operators.gateway.listeners import GatewayState, ListenerState, class_conditions, gateway_states, ours
from operators.gateway.routes import Attachment, CompiledMatch, CompiledRule, ParentStatus, attach
from operators.gateway.views import CONTROLLER, Gateway, GatewayClass, HTTPRoute, Namespace, ReferenceGrant
from operators.ingress.annotations import Annotations
from operators.ingress.model import (
    Builder,
    IngressConfig,
    IngressModel,
    Location,
    Server,
    ingress_is_ours,
    resolve_settings,
)
from operators.ingress.model import (
    build_model as build_ingress_model,
)
from operators.ingress.routing import Listen, RouteAction, RouteMatch, Split
from operators.kube.ingresses import BackendRef, Ingress, IngressClass, TLSSecret
from operators.kube.services import EndpointSlice, Problem, Service


@dataclass(frozen=True)
class GatewayObjects:
    classes: tuple[GatewayClass, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    routes: tuple[HTTPRoute, ...] = ()
    grants: tuple[ReferenceGrant, ...] = ()
    namespaces: tuple[Namespace, ...] = ()


@dataclass(frozen=True)
class Status:
    """What the controller writes: conditions per GatewayClass, Gateway, listener (with its attached route
    count) and HTTPRoute parent."""

    classes: tuple[tuple[str, tuple[Condition, ...]], ...]
    gateways: tuple[GatewayState, ...]
    attached: tuple[tuple[tuple[str, str], int], ...]  # (gateway key, listener name) -> routes
    routes: tuple[tuple[str, tuple[ParentStatus, ...]], ...]
    ports: tuple[tuple[tuple[str, int], int], ...] | None = None  # own addresses: (gateway key, port) -> nginx port


def build_model(objects: GatewayObjects, ingress_classes: Iterable[IngressClass], ingresses: Iterable[Ingress],
                services: Iterable[Service], slices: Iterable[EndpointSlice], secrets: Iterable[TLSSecret],
                config: IngressConfig | None = None, ingress_ports: tuple[int, int] = (80, 443),
                taken_ports: Iterable[int] = (), own_ports: tuple[int, int] | None = None,
                ) -> tuple[IngressModel, list[Problem], Status]:
    """The model nginx serves (Ingresses and Gateways), the problems, and the status to write. `taken_ports`:
    the ingress pod's ports that are not nginx's to serve (its health and metrics servers, nginx's status).
    `own_ports`: the range of nginx ports for Gateways on addresses of their own; None: the shared address."""
    cfg = config or IngressConfig()
    services, secrets, ingress_classes = list(services), list(secrets), list(ingress_classes)
    mine = [i for i in ingresses if ingress_is_ours(i, ingress_classes, cfg)]
    classes = [c for c in objects.classes if c.controller == CONTROLLER]
    plan = None
    if own_ports is not None:
        served_classes = ours(classes)
        plan = allocate((g for g in objects.gateways if g.class_name in served_classes), *own_ports,
                        (*ingress_ports, *taken_ports))
    states = gateway_states(objects.gateways, ours(classes), secrets, objects.grants,
                            {ingress_ports[0]: "HTTP", ingress_ports[1]: "HTTPS"}, taken_ports, plan)
    attachments, parents = attach(objects.routes, states, services, objects.grants, objects.namespaces)
    attached: dict[tuple[str, str], set[str]] = {}
    for a in attachments:
        attached.setdefault(a.listener.key, set()).add(a.route.meta.key)

    def nginx_port(ls: ListenerState) -> int:
        return ls.listener.port if plan is None else plan[(ls.gateway.meta.key, ls.listener.port)]

    def hook(b: Builder, servers: list[Server]) -> list[Server]:
        return _servers(b, servers, states, attachments, mine, ingress_ports, nginx_port)

    model, problems = build_ingress_model(ingress_classes, mine, services, slices, secrets, cfg, more=hook)
    status = Status(tuple((c.meta.name, class_conditions(c)) for c in sorted(classes, key=lambda c: c.meta.name)),
                    tuple(states), tuple(sorted((k, len(v)) for k, v in attached.items())),
                    tuple(sorted(parents.items())), None if plan is None else tuple(sorted(plan.items())))
    return model, problems, status


# --- servers -------------------------------------------------------------------------------------


def _owner_hostname(host: str, candidates: Iterable[str]) -> str | None:
    """The most specific listener hostname on a port that covers `host`."""
    covering = [c for c in candidates if hostnames.covers(c, host)]
    return max(covering, key=hostnames.specificity) if covering else None


def _servers(b: Builder, ingress_servers: list[Server], states: list[GatewayState], attachments: list[Attachment],
             ingresses: list[Ingress], ingress_ports: tuple[int, int],
             nginx_port: Callable[[ListenerState], int]) -> list[Server]:
    """One server per hostname and nginx port: a listener's routes are matched only on its own nginx port."""
    served = [ls for s in states for ls in s.listeners if ls.served]
    ports = sorted({nginx_port(ls) for ls in served})
    out: list[Server] = []
    claims: dict[tuple[str, int], HTTPRoute] = {}  # (host, port) -> the oldest route with a rule there
    counter = [0]
    for port in ports:
        on_port = [ls for ls in served if nginx_port(ls) == port]
        listener_port = on_port[0].listener.port
        listener_hosts = {ls.listener.hostname for ls in on_port}
        here = [a for a in attachments if a.listener.served and nginx_port(a.listener) == port]
        hosts = sorted(listener_hosts | {h for a in here for h in a.hostnames})
        for host in hosts:
            owner = _owner_hostname(host, listener_hosts)
            entries = []
            for a in here:
                if a.listener.listener.hostname != owner:
                    continue
                for name in a.hostnames:
                    if hostnames.covers(name, host):
                        entries.extend((hostnames.specificity(name), a, rule) for rule in a.rules)
                    key = (host, port)
                    if name == host and (key not in claims or _route_age(a.route) < _route_age(claims[key])):
                        claims[key] = a.route  # a claim names the host; a wildcard or no hostname does not
            tls = any(ls.listener.protocol == "HTTPS" for ls in on_port)
            cert_owner = next((ls for ls in on_port if ls.listener.hostname == owner and ls.certificate), None)
            certificate = b.certificate_file(cert_owner.certificate) if tls and cert_owner and cert_owner.certificate \
                else ""
            out.append(_server(b, host, Listen(port, tls), listener_port, certificate, entries, counter))
    return _settle(b, ingress_servers, out, claims, ingresses, ingress_ports)


def _server(b: Builder, host: str, listen: Listen, listener_port: int, certificate: str,
            entries: list[tuple[tuple[int, int], Attachment, CompiledRule]], counter: list[int]) -> Server:
    ordered = []
    for spec, a, rule in entries:
        for i, cm in enumerate(rule.matches):
            ordered.append(((-spec[0], -spec[1]), matches.precedence(cm.match), a.route.meta.age_key, rule.index, i,
                            a, rule, cm))
    ordered.sort(key=lambda e: e[:5])
    locations: list[Location] = []
    route_matches: list[RouteMatch] = []
    defaults = resolve_settings(Annotations(), b.cfg)
    for *_, a, rule, cm in ordered:
        counter[0] += 1
        name = f"knet_r{counter[0]}"
        action = _action(b, a, rule, cm, listener_port)
        locations.append(Location("@", name, cm.match.path, cm.match.path_type, a.route.meta.key,
                                  action.splits[0].upstream if len(action.splits) == 1 else "", defaults,
                                  ssl_redirect=False, action=action))
        route_matches.append(RouteMatch(cm.path_regex, cm.conditions, name,
                                        f"{a.route.meta.key} rule {rule.index} match {cm.match.path_type} "
                                        f"{cm.match.path}"))
    dispatch = Location("", "/", "/", "Dispatch", "", "", defaults, ssl_redirect=False, dispatch=0)
    return Server(host, certificate, (dispatch, *locations), listens=(listen,), matches=tuple(route_matches),
                  gateway=True)


def _action(b: Builder, a: Attachment, rule: CompiledRule, cm: CompiledMatch, port: int) -> RouteAction:
    balance = (b.cfg.load_balance, "")
    splits = []
    for backend in rule.backends:
        if backend.ref.weight <= 0:
            continue
        upstream = ""
        if not backend.why:
            upstream, why = b.upstream(backend.ref.namespace, BackendRef(backend.ref.name, backend.ref.port or 0),
                                       balance)
            if why:
                upstream = ""
        splits.append(Split(upstream, backend.ref.weight))
    mirrors = []
    for m in rule.mirrors:
        if not m.why and m.ref.weight > 0:
            upstream, why = b.upstream(m.ref.namespace, BackendRef(m.ref.name, m.ref.port or 0), balance)
            if not why:
                mirrors.append((upstream, m.ref.weight))
    p = rule.parts
    rewrite = filters.rewrite(p.path, cm.match.path)
    return RouteAction(a.route.meta.key, tuple(splits), p.request_headers, p.response_headers, p.redirect,
                       rewrite, p.host, tuple(mirrors), rule.timeout_ms, port, p.cors)


# --- Ingress and Gateway on one host and port ------------------------------------------------------


def _settle(b: Builder, ingress_servers: list[Server], gateway_servers: list[Server],
            claims: dict[tuple[str, int], HTTPRoute], ingresses: list[Ingress],
            ingress_ports: tuple[int, int]) -> list[Server]:
    oldest: dict[str, Ingress] = {}
    for ing in sorted(ingresses, key=lambda i: i.age_key):
        hosts = {r.host for r in ing.rules} | ({""} if ing.default_backend is not None and not ing.rules else set())
        for h in hosts:
            oldest.setdefault(h, ing)
    lost: dict[str, set[int]] = {}  # ingress host -> ports it lost
    kept: list[Server] = []
    for server in gateway_servers:
        port = server.listens[0].port
        ing = oldest.get(server.host) if port in ingress_ports else None
        route = claims.get((server.host, port))
        if ing is None or (route is not None and _route_age(route) < ing.age_key):
            if port in ingress_ports:
                lost.setdefault(server.host, set()).add(port)
                if ing is not None:
                    b.problem(ing, f"host {server.host or '*'} on port {port} is served by HTTPRoute "
                                   f"{route.meta.key if route else ''}, which is older; this Ingress's rules "
                                   "for it are not served there")
            kept.append(server)
        else:
            for key, r in claims.items():
                if key == (server.host, port):
                    b.problems.append(Problem("HTTPRoute", r.meta.namespace, r.meta.name,
                                              f"host {server.host or '*'} on port {port} is served by Ingress "
                                              f"{ing.key}, which is older; this route is not served there"))
    out = []
    http, https = ingress_ports
    for server in ingress_servers:
        ports = lost.get(server.host, set())
        if not ports:
            out.append(server)
        elif len(ports) < 2:
            out.append(replace(server, listens=tuple(Listen(p, p == https) for p in (http, https) if p not in ports)))
    return out + kept


def _route_age(route: HTTPRoute) -> tuple[str, str, str, str]:
    created, ns, name = route.meta.age_key
    return created, route.meta.uid, ns, name
