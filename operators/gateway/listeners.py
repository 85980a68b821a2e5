"""GatewayClasses and Gateways: which are ours, which listeners knet serves, and their conditions.

A listener is served when it is Accepted (a protocol knet speaks, HTTP or HTTPS with TLS terminated, a
valid hostname, no conflict) and its references resolve (an HTTPS listener's certificate Secret exists,
is valid, and is in the Gateway's namespace or granted by a ReferenceGrant). Conflicts, as the spec names
them: listeners on one port with different protocols (ProtocolConflict), or with one protocol and one
hostname (HostnameConflict). Within a Gateway every such listener is Conflicted. When Gateways share
nginx's ports (no address of their own), across Gateways the older Gateway keeps the port, and on the Ingress
controller's own ports the protocol is fixed (plain HTTP on its HTTP port, TLS on its HTTPS port): one nginx
socket is either TLS or not. When each Gateway has its own address (`addresses.py`), its listeners reach
nginx on ports of their own, so only listeners of one Gateway can conflict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from operators.gateway import hostnames
from operators.gateway.conditions import Condition, condition
from operators.gateway.views import (
    CONTROLLER,
    GROUP,
    Gateway,
    GatewayClass,
    Listener,
    ReferenceGrant,
    permitted,
)
from operators.ingress.certs import weakness
from operators.kube.ingresses import TLSSecret

ROUTE_KINDS = ((GROUP, "HTTPRoute"),)
PROTOCOLS = ("HTTP", "HTTPS")


def class_conditions(cls: GatewayClass) -> tuple[Condition, ...]:
    """Accepted for every class whose controllerName is knet's; knet takes no parameters."""
    if cls.has_parameters:
        return (condition("Accepted", False, "InvalidParameters", "knet's GatewayClass takes no parametersRef"),)
    return (condition("Accepted", True, "Accepted", "knet serves this class with nginx"),
            condition("SupportedVersion", True, "SupportedVersion", "Gateway API v1.6"))


def ours(classes: Iterable[GatewayClass], controller: str = CONTROLLER) -> set[str]:
    return {c.meta.name for c in classes if c.controller == controller and not c.has_parameters}


@dataclass(frozen=True)
class ListenerState:
    gateway: Gateway
    listener: Listener
    conditions: tuple[Condition, ...]
    certificate: TLSSecret | None
    kinds: tuple[tuple[str, str], ...]  # the route kinds it takes
    served: bool

    @property
    def key(self) -> tuple[str, str]:
        return self.gateway.meta.key, self.listener.name

    @property
    def accepted(self) -> bool:
        """Routes attach to an accepted listener even while it is not served (say, its certificate is
        missing): the spec counts them in its attachedRoutes, and only served listeners reach nginx."""
        return is_true(self.conditions, "Accepted")


@dataclass(frozen=True)
class GatewayState:
    gateway: Gateway
    conditions: tuple[Condition, ...]
    listeners: tuple[ListenerState, ...]

    @property
    def accepted(self) -> bool:
        return is_true(self.conditions, "Accepted")


def is_true(conditions: Iterable[Condition], type_: str) -> bool:
    return any(c.type == type_ and c.status for c in conditions)


def _kinds(listener: Listener) -> tuple[tuple[tuple[str, str], ...], bool]:
    """(the route kinds the listener takes, whether every kind it names is one knet supports)."""
    if not listener.kinds:
        return ROUTE_KINDS, True
    supported = tuple(k for k in listener.kinds if k in ROUTE_KINDS)
    return supported, len(supported) == len(listener.kinds)


def _certificate(gw: Gateway, listener: Listener, secrets: dict[str, TLSSecret],
                 grants: list[ReferenceGrant]) -> tuple[TLSSecret | None, Condition]:
    if not listener.certificates:
        return None, condition("ResolvedRefs", False, "InvalidCertificateRef", "an HTTPS listener needs a certificate")
    ref = listener.certificates[0]
    if (ref.group, ref.kind) != ("", "Secret"):
        return None, condition("ResolvedRefs", False, "InvalidCertificateRef",
                               f"certificateRef {ref.group or 'core'}/{ref.kind} is not a Secret")
    if not permitted(grants, (GROUP, "Gateway", gw.meta.namespace), ref):
        return None, condition("ResolvedRefs", False, "RefNotPermitted",
                               f"no ReferenceGrant in {ref.namespace} lets Gateways of {gw.meta.namespace} "
                               f"use Secret {ref.name}")
    secret = secrets.get(f"{ref.namespace}/{ref.name}")
    if secret is None:
        return None, condition("ResolvedRefs", False, "InvalidCertificateRef",
                               f"Secret {ref.namespace}/{ref.name} is missing or not a valid TLS Secret")
    weak = weakness(secret.cert_pem)
    if weak:
        return None, condition("ResolvedRefs", False, "InvalidCertificateRef", f"Secret {secret.key}: {weak}")
    return secret, condition("ResolvedRefs", True, "ResolvedRefs")


def _check(gw: Gateway, listener: Listener, secrets: dict[str, TLSSecret], grants: list[ReferenceGrant],
           conflict: str, unavailable: str) -> ListenerState:
    kinds, all_kinds = _kinds(listener)
    refused = ""
    if listener.protocol not in PROTOCOLS:  # no route kind fits a protocol knet does not speak
        reason, refused = "UnsupportedProtocol", f"protocol {listener.protocol} is not supported (HTTP, HTTPS)"
        kinds = ()
    elif listener.hostname and not hostnames.valid(listener.hostname):
        reason, refused = "UnsupportedValue", f"hostname {listener.hostname!r} is not a valid hostname"
    elif listener.protocol == "HTTPS" and listener.tls_mode != "Terminate":
        reason, refused = "UnsupportedValue", f"TLS mode {listener.tls_mode} is not supported on HTTPS"
    elif unavailable:  # nginx could not bind it, and would then keep its old config for everyone
        reason, refused = "PortUnavailable", unavailable
    elif conflict:
        reason, refused = conflict, f"another listener on port {listener.port} conflicts ({conflict})"
    conds = [condition("Conflicted", bool(conflict), conflict or "NoConflicts")]
    certificate = None
    resolved = condition("ResolvedRefs", True, "ResolvedRefs")
    if not refused and listener.protocol == "HTTPS":
        certificate, resolved = _certificate(gw, listener, secrets, grants)
    if resolved.status and not all_kinds:
        resolved = condition("ResolvedRefs", False, "InvalidRouteKinds",
                             "allowedRoutes.kinds names kinds knet does not support (HTTPRoute)")
    served = not refused and (resolved.status or resolved.reason == "InvalidRouteKinds") and bool(kinds)
    conds += [condition("Accepted", not refused, reason if refused else "Accepted", refused), resolved,
              condition("Programmed", served, "Programmed" if served else "Invalid",
                        "" if served else "the listener is not served")]
    return ListenerState(gw, listener, tuple(conds), certificate, kinds, served)


def _conflicts(gateways: list[Gateway], ingress_ports: dict[int, str]) -> dict[tuple[str, str], str]:
    """(gateway key, listener name) -> the conflict reason, for every conflicted listener."""
    out: dict[tuple[str, str], str] = {}
    port_owner: dict[int, tuple[str, str]] = {p: ("", proto) for p, proto in ingress_ports.items()}
    for gw in gateways:  # oldest first
        by_port: dict[int, list[Listener]] = {}
        for lst in gw.listeners:
            if lst.protocol in PROTOCOLS:
                by_port.setdefault(lst.port, []).append(lst)
        for port, group in by_port.items():
            protocols = {lst.protocol for lst in group}
            owner = port_owner.get(port)
            if len(protocols) > 1 or (owner and owner[1] not in protocols):
                out.update(((gw.meta.key, lst.name), "ProtocolConflict") for lst in group)
                continue
            port_owner.setdefault(port, (gw.meta.key, group[0].protocol))
            seen: dict[str, list[Listener]] = {}
            for lst in group:
                seen.setdefault(lst.hostname, []).append(lst)
            for same in seen.values():
                if len(same) > 1:
                    out.update(((gw.meta.key, lst.name), "HostnameConflict") for lst in same)
    return out


def _unavailable(gw: Gateway, listener: Listener, taken: frozenset[int],
                 nginx_ports: Mapping[tuple[str, int], int] | None) -> str:
    """Why nginx cannot listen for the listener ("" when it can)."""
    if nginx_ports is not None:
        return "" if (gw.meta.key, listener.port) in nginx_ports else "no nginx port is left in knet's range"
    return f"port {listener.port} is taken by another server of knet's ingress pod" if listener.port in taken else ""


def gateway_states(gateways: Iterable[Gateway], our_classes: set[str], secrets: Iterable[TLSSecret],
                   grants: Iterable[ReferenceGrant], ingress_ports: dict[int, str],
                   taken_ports: Iterable[int] = (),
                   nginx_ports: Mapping[tuple[str, int], int] | None = None) -> list[GatewayState]:
    """The states of the Gateways of our classes, oldest first. `ingress_ports`: port -> the protocol the
    Ingress controller serves there (HTTP, HTTPS); `taken_ports`: the ingress pod's other servers' ports
    (health, metrics, nginx's status), which no listener may have. With `nginx_ports` (each Gateway on its
    own address, `addresses.allocate`), neither applies: a listener needs only its nginx port."""
    taken = frozenset(taken_ports)
    mine = sorted((g for g in gateways if g.class_name in our_classes), key=lambda g: g.meta.age_key)
    by_key = {s.key: s for s in secrets}
    grant_list = list(grants)
    if nginx_ports is None:
        conflicts = _conflicts(mine, ingress_ports)
    else:
        conflicts = {k: v for gw in mine for k, v in _conflicts([gw], {}).items()}
    states = []
    for gw in mine:
        listeners = tuple(_check(gw, lst, by_key, grant_list, conflicts.get((gw.meta.key, lst.name), ""),
                                 _unavailable(gw, lst, taken, nginx_ports)) for lst in gw.listeners)
        served = sum(ls.served for ls in listeners)
        valid = all(ls.conditions[1].status for ls in listeners)
        if gw.infrastructure.has_parameters:
            accepted = condition("Accepted", False, "InvalidParameters",
                                 "knet takes no infrastructure.parametersRef")
        elif gw.has_addresses:
            accepted = condition("Accepted", False, "UnsupportedAddress",
                                 "knet takes a Gateway's addresses from its LoadBalancer Service; "
                                 "spec.addresses is not supported")
        else:
            accepted = condition("Accepted", served > 0 or valid, "Accepted" if valid else "ListenersNotValid",
                                 "" if valid else "some listeners are not valid")
        programmed = condition("Programmed", accepted.status and served > 0,
                               "Programmed" if accepted.status and served else "Invalid")
        if not accepted.status:  # nothing of a Gateway that is not accepted is served
            not_served = condition("Programmed", False, "Invalid", "the Gateway is not accepted")
            listeners = tuple(replace(ls, served=False, conditions=tuple(
                not_served if c.type == "Programmed" else c for c in ls.conditions)) for ls in listeners)
        states.append(GatewayState(gw, (accepted, programmed), listeners))
    return states
