"""Typed, frozen views of GatewayClasses, Gateways, HTTPRoutes, ReferenceGrants and Namespaces
(gateway.networking.k8s.io/v1 and v1beta1).

Parsing never raises and keeps the object's shape: a value of the wrong type is dropped with a
`Problem`. Whether a value is acceptable (a header name nginx can name, a path knet can match) is
the model's decision, because the spec wants it answered in the route's or listener's conditions,
not only in an Event. Names that become nginx identifiers or file names (namespaces, object names)
are checked here, as everywhere in `operators.kube`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operators.kube.parse import Problem, Reader, field, is_dns_label, is_dns_subdomain, timestamp

GROUP = "gateway.networking.k8s.io"
CONTROLLER = "knet.io/gateway-nginx"


def _text(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Meta:
    """What every view needs for ordering and status: the spec orders by creation time, then by name."""

    namespace: str
    name: str
    created: str
    generation: int
    uid: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def age_key(self) -> tuple[str, str, str]:
        return self.created or "9999", self.namespace, self.name


def _meta(p: Reader, obj: object) -> Meta:
    md = field(obj, "metadata")
    return Meta(p.namespace or "", p.name, timestamp(field(md, "creationTimestamp")),
                _int(field(md, "generation")) or 0, _text(field(md, "uid")))


# --- GatewayClass, Namespace -----------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayClass:
    meta: Meta
    controller: str
    has_parameters: bool


def parse_gateway_class(obj: object) -> tuple[GatewayClass | None, list[Problem]]:
    p = Reader.of("GatewayClass", obj, namespaced=False)
    if not p.named(is_dns_subdomain, "DNS subdomain"):
        return None, p.problems
    spec = p.mapping_at(obj, "spec")
    return GatewayClass(_meta(p, obj), _text(field(spec, "controllerName")),
                        field(spec, "parametersRef") is not None), p.problems


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: tuple[tuple[str, str], ...]


def parse_namespace(obj: object) -> tuple[Namespace | None, list[Problem]]:
    p = Reader.of("Namespace", obj, namespaced=False)
    if not p.named(is_dns_label, "DNS label"):
        return None, p.problems
    return Namespace(p.name, tuple(sorted(p.metadata_map(obj, "labels").items()))), p.problems


# --- Gateway -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectRef:
    """A reference to another object (certificate, backend, parent): group "" is the core API group."""

    group: str
    kind: str
    namespace: str  # the referrer's namespace when the reference leaves it out
    name: str
    port: int | None = None
    section: str = ""
    weight: int = 1  # a backendRef's weight; a mirror's share of requests (`filters.mirror_share`)
    filters: tuple[Filter, ...] = ()


@dataclass(frozen=True)
class Selector:
    """A label selector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist)."""

    labels: tuple[tuple[str, str], ...]
    expressions: tuple[tuple[str, str, tuple[str, ...]], ...]
    valid: bool = True

    def matches(self, labels: dict[str, str]) -> bool:
        if not self.valid:
            return False
        if any(labels.get(k) != v for k, v in self.labels):
            return False
        for key, op, values in self.expressions:
            present = key in labels
            ok = {"In": present and labels.get(key) in values, "NotIn": not present or labels[key] not in values,
                  "Exists": present, "DoesNotExist": not present}.get(op, False)
            if not ok:
                return False
        return True


@dataclass(frozen=True)
class Listener:
    name: str
    hostname: str  # "" for any
    port: int
    protocol: str
    tls_mode: str  # Terminate | Passthrough ("" without tls)
    certificates: tuple[ObjectRef, ...]
    namespaces_from: str  # Same | All | Selector
    selector: Selector | None
    kinds: tuple[tuple[str, str], ...]  # (group, kind); empty: the protocol's default kinds


@dataclass(frozen=True)
class Infrastructure:
    """`spec.infrastructure`: labels and annotations for what knet makes for the Gateway (its Service), and
    whether it names parameters (knet takes none)."""

    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    has_parameters: bool = False


@dataclass(frozen=True)
class Gateway:
    meta: Meta
    class_name: str
    listeners: tuple[Listener, ...]
    has_addresses: bool  # spec.addresses names an address (an entry without a value asks for any: none named)
    infrastructure: Infrastructure = Infrastructure()


def _selector(value: object) -> Selector:
    labels = field(value, "matchLabels") or {}
    exprs = field(value, "matchExpressions") or []
    if not isinstance(labels, dict) or not isinstance(exprs, list):
        return Selector((), (), valid=False)
    parsed = []
    for e in exprs:
        op, values = field(e, "operator"), field(e, "values") or []
        if op not in ("In", "NotIn", "Exists", "DoesNotExist") or not isinstance(values, list):
            return Selector((), (), valid=False)
        parsed.append((_text(field(e, "key")), op, tuple(str(v) for v in values)))
    return Selector(tuple(sorted((str(k), str(v)) for k, v in labels.items())), tuple(parsed))


def _ref(p: Reader, raw: object, namespace: str, group: str, kind: str) -> ObjectRef | None:
    name = field(raw, "name")
    if not isinstance(name, str) or not name:
        p.problem(f"reference {raw!r} has no name; ignored")
        return None
    return ObjectRef(_text(field(raw, "group"), group), _text(field(raw, "kind"), kind),
                     _text(field(raw, "namespace"), namespace), name, _int(field(raw, "port")),
                     _text(field(raw, "sectionName")))


def _listener(p: Reader, raw: object, namespace: str) -> Listener | None:
    name, port = field(raw, "name"), _int(field(raw, "port"))
    if not isinstance(name, str) or port is None:
        p.problem(f"listener {raw!r} has no name or port; ignored")
        return None
    tls = p.mapping_at(raw, "tls")
    allowed = p.mapping_at(raw, "allowedRoutes")
    namespaces = p.mapping_at(allowed, "namespaces")
    kinds = tuple((_text(field(k, "group"), GROUP), _text(field(k, "kind"))) for k in p.array_at(allowed, "kinds"))
    certs = tuple(r for c in p.array_at(tls, "certificateRefs") if (r := _ref(p, c, namespace, "", "Secret")))
    return Listener(name, _text(field(raw, "hostname")), port, _text(field(raw, "protocol")),
                    _text(field(tls, "mode"), "Terminate") if tls else "", certs,
                    _text(field(namespaces, "from"), "Same"),
                    _selector(field(namespaces, "selector")) if field(namespaces, "selector") is not None else None,
                    kinds)


def parse_gateway(obj: object) -> tuple[Gateway | None, list[Problem]]:
    p = Reader.of("Gateway", obj)
    if not p.named(is_dns_subdomain, "DNS subdomain"):
        return None, p.problems
    spec = p.mapping_at(obj, "spec")
    listeners = tuple(x for raw in p.array_at(spec, "listeners") if (x := _listener(p, raw, p.namespace)))
    infra = p.mapping_at(spec, "infrastructure")
    return Gateway(_meta(p, obj), _text(field(spec, "gatewayClassName")), listeners,
                   any(field(a, "value") for a in p.array_at(spec, "addresses")),  # no value: any address
                   Infrastructure(_string_map(p.mapping_at(infra, "labels")),
                                  _string_map(p.mapping_at(infra, "annotations")),
                                  field(infra, "parametersRef") is not None)), p.problems


def _string_map(value: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """A label or annotation map (the CRD checks keys and values), sorted; entries not of strings dropped."""
    return tuple(sorted((k, v) for k, v in value.items() if isinstance(k, str) and isinstance(v, str)))


# --- HTTPRoute -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    path_type: str  # Exact | PathPrefix | RegularExpression
    path: str
    headers: tuple[tuple[str, str, str], ...]  # (type, name, value)
    queries: tuple[tuple[str, str, str], ...]
    method: str


@dataclass(frozen=True)
class Filter:
    """One filter, kept as its type and its (JSON-like) settings; `operators.gateway.filters` reads them."""

    type: str
    settings: tuple[tuple[str, Any], ...]

    def get(self, key: str) -> Any:
        return dict(self.settings).get(key)


@dataclass(frozen=True)
class Rule:
    name: str
    matches: tuple[Match, ...]
    filters: tuple[Filter, ...]
    backends: tuple[ObjectRef, ...]
    timeout_request: str
    timeout_backend: str


@dataclass(frozen=True)
class HTTPRoute:
    meta: Meta
    parents: tuple[ObjectRef, ...]
    hostnames: tuple[str, ...]
    rules: tuple[Rule, ...]


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


_FILTER_FIELDS = {"URLRewrite": "urlRewrite", "CORS": "cors"}


def _filter(p: Reader, raw: object) -> Filter | None:
    kind = field(raw, "type")
    if not isinstance(kind, str) or not isinstance(raw, dict):
        p.problem(f"filter {raw!r} has no type; ignored")
        return None
    key = _FILTER_FIELDS.get(kind, kind[:1].lower() + kind[1:])
    settings = field(raw, key) or {}
    return Filter(kind, _freeze(settings) if isinstance(settings, dict) else ())


def _pairs(values: object) -> tuple[tuple[str, str, str], ...]:
    out = []
    for v in values if isinstance(values, list) else []:
        out.append((_text(field(v, "type"), "Exact"), _text(field(v, "name")), _text(field(v, "value"))))
    return tuple(out)


def _match(raw: object) -> Match:
    path = field(raw, "path") or {}
    return Match(_text(field(path, "type"), "PathPrefix"), _text(field(path, "value"), "/"),
                 _pairs(field(raw, "headers")), _pairs(field(raw, "queryParams")), _text(field(raw, "method")))


def _rule(p: Reader, raw: object, namespace: str) -> Rule:
    matches = tuple(_match(m) for m in p.array_at(raw, "matches")) or (Match("PathPrefix", "/", (), (), ""),)
    filters = tuple(f for raw_f in p.array_at(raw, "filters") if (f := _filter(p, raw_f)))
    backends = []
    for b in p.array_at(raw, "backendRefs"):
        ref = _ref(p, b, namespace, "", "Service")
        if ref is not None:
            weight = _int(field(b, "weight"))
            ref_filters = tuple(f for raw_f in p.array_at(b, "filters") if (f := _filter(p, raw_f)))
            backends.append(ObjectRef(ref.group, ref.kind, ref.namespace, ref.name, ref.port, "",
                                      1 if weight is None else weight, ref_filters))
    timeouts = p.mapping_at(raw, "timeouts")
    return Rule(_text(field(raw, "name")), matches, filters, tuple(backends),
                _text(field(timeouts, "request")), _text(field(timeouts, "backendRequest")))


def parse_http_route(obj: object) -> tuple[HTTPRoute | None, list[Problem]]:
    p = Reader.of("HTTPRoute", obj)
    if not p.named(is_dns_subdomain, "DNS subdomain"):
        return None, p.problems
    spec = p.mapping_at(obj, "spec")
    parents = tuple(r for raw in p.array_at(spec, "parentRefs") if (r := _ref(p, raw, p.namespace, GROUP, "Gateway")))
    hostnames = tuple(h for h in p.array_at(spec, "hostnames") if isinstance(h, str))
    rules = tuple(_rule(p, raw, p.namespace) for raw in p.array_at(spec, "rules")) or (
        Rule("", (Match("PathPrefix", "/", (), (), ""),), (), (), "", ""),)
    return HTTPRoute(_meta(p, obj), parents, hostnames, rules), p.problems


# --- ReferenceGrant ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceGrant:
    namespace: str
    sources: tuple[tuple[str, str, str], ...]  # (group, kind, namespace)
    targets: tuple[tuple[str, str, str], ...]  # (group, kind, name or "" for all)


def parse_reference_grant(obj: object) -> tuple[ReferenceGrant | None, list[Problem]]:
    p = Reader.of("ReferenceGrant", obj)
    if not p.named(is_dns_subdomain, "DNS subdomain"):
        return None, p.problems
    spec = p.mapping_at(obj, "spec")
    sources = tuple((_text(field(f, "group")), _text(field(f, "kind")), _text(field(f, "namespace")))
                    for f in p.array_at(spec, "from"))
    targets = tuple((_text(field(t, "group")), _text(field(t, "kind")), _text(field(t, "name")))
                    for t in p.array_at(spec, "to"))
    return ReferenceGrant(p.namespace, sources, targets), p.problems


def permitted(grants: tuple[ReferenceGrant, ...] | list[ReferenceGrant], source: tuple[str, str, str],
              target: ObjectRef) -> bool:
    """Whether `source` (group, kind, namespace) may refer to `target`: always within one namespace, across
    namespaces only where a ReferenceGrant in the target's namespace allows it."""
    if source[2] == target.namespace:
        return True
    return any(g.namespace == target.namespace and source in g.sources
               and any((grp, kind) == (target.group, target.kind) and name in ("", target.name)
                       for grp, kind, name in g.targets) for g in grants)


def labels_of(namespaces: dict[str, Namespace], name: str) -> dict[str, str]:
    ns = namespaces.get(name)
    return dict(ns.labels) if ns else {"kubernetes.io/metadata.name": name}


