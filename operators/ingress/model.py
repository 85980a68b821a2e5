"""The Ingress controller's pure model: a frozen snapshot of what nginx must serve.

`build_model` takes the typed views (IngressClasses, Ingresses, Services, EndpointSlices, TLS
Secrets) and a controller config, and returns servers (one per host), their locations in nginx
match order, the upstreams with their ready endpoints, and the certificate files to write. It
follows the Ingress API exactly where the API is exact, and ingress-nginx where it is not:

- pathType Exact is an exact match; Prefix matches whole path elements (`/foo` matches `/foo` and
  `/foo/bar`, not `/foobar`, a trailing slash is ignored); ImplementationSpecific is a regular
  expression (case-insensitive, anchored at the start) when the Ingress sets use-regex or
  rewrite-target, and a plain string prefix otherwise. Exact beats Prefix, longer beats shorter.
  When a host has any regex location, its Prefix paths become equivalent case-sensitive regexes so
  that "longest path first" holds across all of them (nginx would otherwise let any matching regex
  beat every prefix).
- A host belongs to the namespace of its oldest Ingress (creationTimestamp, then UID): rules for it
  in other namespaces are ignored with a problem (`bindHostToNamespace`, on by default), so no tenant
  can add a path, a regex or a canary to another tenant's host.
- Several Ingresses for one host are merged; on a conflict (same path, same match) the oldest
  Ingress wins and the newer one gets a problem. Server-wide settings (TLS, app-root, the host's
  default backend) come from the oldest Ingress that sets them.
- A host without a `/` rule falls back to the defaultBackend of its oldest Ingress that has one,
  then to the controller's default backend, then to a built-in 404; unknown hosts get the same
  from the catch-all server.
- A TLS host uses its Secret's certificate if the Secret exists, is valid and covers the host, else
  the default certificate (with a problem); plain HTTP to it is redirected (308) unless
  ssl-redirect is "false". The redirect stays on with the fallback certificate: a broken Secret
  must not silently downgrade a site to HTTP.
- Canary Ingresses attach a second backend to the locations of the main Ingress with the same
  host, path and pathType and the same namespace; only their canary-* annotations are used.
- Whatever nginx would refuse is refused here for the Ingress at fault (`limits.py`): strings longer
  than nginx reads in one word, TLS keys smaller than its OpenSSL accepts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from operators.ingress import annotations as ann
from operators.ingress.annotations import Annotations
from operators.ingress.certs import weakness
from operators.ingress.limits import MAX_TOKEN, MAX_VALUE, shown, too_long
from operators.ingress.routing import Listen, RouteAction, RouteMatch
from operators.kube import services as api
from operators.kube.ingresses import (
    CONTROLLER,
    BackendRef,
    HTTPPath,
    Ingress,
    IngressClass,
    TLSSecret,
    host_matches,
)
from operators.kube.services import EndpointSlice, Problem, Service

# Characters allowed in Exact, Prefix and plain ImplementationSpecific paths: enough for real URLs,
# nothing nginx treats specially (no quotes, spaces, `;`, `{}`, `$`, `#`, backslash).
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9/._~%!*+,=:@&()-]*$")
# Regex paths additionally get regex punctuation; escapes only for classes and punctuation.
_REGEX_PATH = re.compile(r"^/(?:[A-Za-z0-9/._~%!*+,=:@&()|?^$\[\]{}-]|\\[dDwWsSbB./()\[\]{}|?*+^$-])*$")
_CONFIG_ANNOTATIONS = ("proxyBodySize", "proxyConnectTimeout", "proxySendTimeout", "proxyReadTimeout",
                       "proxyNextUpstream", "proxyNextUpstreamTries", "loadBalance", "sslRedirect")


@dataclass(frozen=True)
class IngressConfig:
    """Controller-wide settings (camelCase keys in `from_dict`); annotations override them per Ingress."""

    controller: str = CONTROLLER
    watch_without_class: bool = False  # also serve Ingresses with no class when no class is the default
    default_backend: str = ""  # "namespace/service:port"; "" for the built-in 404
    ssl_redirect: bool = True
    proxy_body_size: str = "1m"
    proxy_connect_timeout: int = 5
    proxy_send_timeout: int = 60
    proxy_read_timeout: int = 60
    proxy_next_upstream: tuple[str, ...] = ("error", "timeout")
    proxy_next_upstream_tries: int = 3
    load_balance: str = "round_robin"
    bind_host_to_namespace: bool = True  # a host's rules come only from the namespace that claimed it first

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> tuple[IngressConfig, list[Problem]]:
        """Read the config; each bad value keeps its default and gives a problem."""
        problems: list[Problem] = []

        def bad(message: str) -> None:
            problems.append(Problem("IngressConfig", "", "default", message))

        data = data if isinstance(data, Mapping) else {}
        as_annotations = {
            ann.PREFIX + re.sub(r"[A-Z]", lambda m: "-" + m[0].lower(), key):
                str(value).lower() if isinstance(value, bool) else str(value)
            for key in _CONFIG_ANNOTATIONS if (value := api.field(data, key)) is not None}
        parsed, messages = ann.parse_annotations(as_annotations)
        for message in messages:
            bad(message.replace("annotation ", "setting "))
        default = cls()
        values: dict[str, Any] = {}
        for name in ("proxy_body_size", "proxy_connect_timeout", "proxy_send_timeout", "proxy_read_timeout",
                     "proxy_next_upstream", "proxy_next_upstream_tries", "load_balance"):
            if getattr(parsed, name) not in (None, "", ()):
                values[name] = getattr(parsed, name)
        if parsed.ssl_redirect is not None:
            values["ssl_redirect"] = parsed.ssl_redirect
        controller = api.field(data, "controller", default.controller)
        if isinstance(controller, str) and controller:
            values["controller"] = controller
        else:
            bad(f"controller {controller!r} is not a non-empty string; using {default.controller}")
        for key, name in (("watchIngressWithoutClass", "watch_without_class"),
                          ("bindHostToNamespace", "bind_host_to_namespace")):
            flag = api.field(data, key, getattr(default, name))
            if isinstance(flag, bool):
                values[name] = flag
            else:
                bad(f"{key} {flag!r} is not a boolean; using {str(getattr(default, name)).lower()}")
        backend = api.field(data, "defaultBackend", "")
        if backend and _parse_service_ref(backend) is None:
            bad(f"defaultBackend {backend!r} is not namespace/service:port; using the built-in 404")
        elif backend:
            values["default_backend"] = backend
        return replace(default, **values), problems


def _parse_service_ref(value: object) -> tuple[str, BackendRef] | None:
    """("namespace", BackendRef) from "namespace/service:port", or None."""
    m = re.fullmatch(r"([^/]+)/([^:]+):([0-9]{1,5}|[a-z0-9-]+)", value) if isinstance(value, str) else None
    if not m or not all(api.is_dns_label(part) for part in m.groups()):
        return None
    if not m[3].isdigit():
        return m[1], BackendRef(m[2], m[3])
    return (m[1], BackendRef(m[2], int(m[3]))) if 1 <= int(m[3]) <= 65535 else None


# --- the snapshot --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """One Service port with one balancing policy; endpoints are `ip:port` / `[ip6]:port`, sorted."""

    name: str
    service: str  # namespace/name:port, for comments
    method: str  # round_robin | least_conn | hash | cookie
    key: str  # hash: nginx variables (validated); cookie: the cookie name; else ""
    endpoints: tuple[str, ...]


@dataclass(frozen=True)
class CanaryRoute:
    upstream: str
    ingress: str
    rule: ann.Canary


@dataclass(frozen=True)
class Location:
    """One nginx location. `modifier` is "=", "" (string prefix), "~" (regex) or "~*" (regex, any case)."""

    modifier: str
    pattern: str  # a plain path, or a regex built from validated parts
    path: str  # the Ingress path it came from ("/" for fallbacks)
    path_type: str  # Exact | Prefix | ImplementationSpecific | Fallback
    ingress: str  # namespace/name, "" for the controller's own fallback
    upstream: str  # "" when nothing can serve it: 503 (or 404 for the built-in fallback)
    settings: Annotations  # resolved: controller defaults filled in
    ssl_redirect: bool
    canary: CanaryRoute | None = None
    action: RouteAction | None = None  # an HTTPRoute rule's named location (modifier "@")
    dispatch: int | None = None  # the server's RouteMatch map: this location hands every request to it

    @property
    def key(self) -> tuple[str, str]:
        return self.modifier, self.pattern


@dataclass(frozen=True)
class Server:
    host: str  # "" for the catch-all server
    certificate: str  # certificate file name (cert chain + key), "" for the default certificate
    locations: tuple[Location, ...]
    app_root: str = ""
    listens: tuple[Listen, ...] = ()  # empty: the controller's HTTP and HTTPS ports (an Ingress host)
    matches: tuple[RouteMatch, ...] = ()  # a Gateway server: in precedence order
    gateway: bool = False  # Gateway API hostnames: `*.example.com` matches any number of labels


@dataclass(frozen=True)
class IngressModel:
    config: IngressConfig
    servers: tuple[Server, ...]  # the catch-all first, then by host
    upstreams: tuple[Upstream, ...]  # by name
    certificates: tuple[tuple[str, bytes], ...]  # (file name, PEM chain + key), by name
    error_upstream: str = ""  # the controller's default backend, for custom-http-errors
    ingresses: tuple[str, ...] = ()  # namespace/name of every Ingress this controller serves (for status)


# --- building ------------------------------------------------------------------------------------


def ingress_is_ours(ing: Ingress, classes: Iterable[IngressClass], config: IngressConfig) -> bool:
    """Whether this controller serves the Ingress: its class (or legacy annotation) names one of our
    IngressClasses, or it has no class and our class is the cluster default (or watch_without_class)."""
    classes = list(classes)
    ours = {c.name for c in classes if c.controller == config.controller}
    if ing.class_name:
        return ing.class_name in ours
    defaults = [c for c in classes if c.is_default]
    return any(c.name in ours for c in defaults) or (config.watch_without_class and not defaults)


def regex_ok(path: str, grammar: re.Pattern[str] = _REGEX_PATH) -> bool:
    """Within knet's regex grammar, compiled by Python, and within PCRE's bound on `{n,m}` (65535)."""
    if not grammar.fullmatch(path) or "(?" in path.replace("(?:", ""):
        return False
    bounds = [int(b) for pair in re.findall(r"\{(\d+)(?:,(\d*))?\}", path) for b in pair if b]
    if any(b > 65535 for b in bounds):
        return False
    try:
        re.compile(path)
    except re.error:
        return False
    return True


def resolve_settings(a: Annotations, cfg: IngressConfig) -> Annotations:
    return replace(
        a,
        proxy_body_size=a.proxy_body_size or cfg.proxy_body_size,
        proxy_connect_timeout=a.proxy_connect_timeout or cfg.proxy_connect_timeout,
        proxy_send_timeout=a.proxy_send_timeout or cfg.proxy_send_timeout,
        proxy_read_timeout=a.proxy_read_timeout or cfg.proxy_read_timeout,
        proxy_next_upstream=a.proxy_next_upstream or cfg.proxy_next_upstream,
        proxy_next_upstream_tries=cfg.proxy_next_upstream_tries if a.proxy_next_upstream_tries is None
        else a.proxy_next_upstream_tries,
        load_balance=a.load_balance or cfg.load_balance,
        ssl_redirect=cfg.ssl_redirect if a.ssl_redirect is None else a.ssl_redirect,
    )


def _balance(a: Annotations) -> tuple[str, str]:
    """(method, key), in ingress-nginx's precedence: cookie affinity, then upstream-hash-by, then load-balance."""
    if a.affinity:
        return "cookie", a.affinity.cookie
    if a.upstream_hash_by:
        return "hash", a.upstream_hash_by
    return a.load_balance or "round_robin", ""


@dataclass
class _Draft:
    """A server while Ingresses are merged into it."""

    host: str
    regex: bool = False
    locations: dict[tuple[str, str], Location] = field(default_factory=dict)
    owners: list[str] = field(default_factory=list)  # Ingresses with rules here, oldest first
    tls: tuple[Ingress, str] | None = None  # (Ingress, Secret name) that gives this host TLS
    app_root: tuple[str, str] | None = None  # (Ingress key, path)
    fallback: tuple[Ingress, BackendRef] | None = None


class Builder:
    def __init__(self, services: Iterable[Service], slices: Iterable[EndpointSlice],
                 secrets: Iterable[TLSSecret], config: IngressConfig) -> None:
        self.cfg = config
        self.services = {(s.namespace, s.name): s for s in services}
        self.slices: dict[tuple[str, str], list[EndpointSlice]] = {}
        for s in sorted(slices, key=lambda s: (s.namespace, s.name)):
            self.slices.setdefault((s.namespace, s.service_name), []).append(s)
        self.secrets = {s.key: s for s in secrets}
        self.problems: list[Problem] = []
        self.upstreams: dict[str, Upstream] = {}
        self.certificates: dict[str, bytes] = {}
        self.drafts: dict[str, _Draft] = {}
        self.settings: dict[str, Annotations] = {}

    def problem(self, ing: Ingress, message: str) -> None:
        self.problems.append(Problem("Ingress", ing.namespace, ing.name, message))

    # backends

    def upstream(self, ns: str, ref: BackendRef, balance: tuple[str, str]) -> tuple[str, str]:
        """(upstream name, "") or ("", why the backend cannot serve)."""
        svc = self.services.get((ns, ref.service))
        if svc is None:
            return "", f"service {ns}/{ref.service} not found"
        if svc.external_name:
            return "", f"service {ns}/{ref.service} is ExternalName, which knet's Ingress does not proxy to"
        port = next((p for p in svc.ports if p.protocol == "TCP" and (
            p.port == ref.port if isinstance(ref.port, int) else p.name == ref.port)), None)
        if port is None:
            return "", f"service {ns}/{ref.service} has no TCP port {ref.port}"
        endpoints: set[tuple[int, str, int]] = set()
        for sl in self.slices.get((ns, ref.service), []):
            number = next((p.port for p in sl.ports if p.name == port.name and p.protocol == "TCP"), None)
            if sl.family is None or number is None:
                continue
            endpoints.update((sl.family, e.addresses[0], number) for e in sl.endpoints if e.ready)
        method, key = balance
        name = f"{ns}_{ref.service}_{port.port}"
        if (method, key) != (self.cfg.load_balance, ""):
            name += "_" + hashlib.sha256(f"{method} {key}".encode()).hexdigest()[:8]
        ordered = sorted(endpoints, key=lambda e: (e[0], _ip_sort_key(e[1]), e[2]))
        self.upstreams[name] = Upstream(name, f"{ns}/{ref.service}:{port.port}", method, key, tuple(
            f"[{ip}]:{p}" if fam == 6 else f"{ip}:{p}" for fam, ip, p in ordered))
        return name, ""

    def backend(self, ing: Ingress, ref: BackendRef, balance: tuple[str, str], canary: bool = False) -> str:
        name, why = self.upstream(ing.namespace, ref, balance)
        effect = "canary traffic goes to the main backend" if canary else "its paths answer 503"
        if why:
            self.problem(ing, f"backend {ref}: {why}; {effect}")
        elif not self.upstreams[name].endpoints:
            self.problem(ing, f"backend {ref}: service has no ready endpoints; {effect} until it has")
        return name

    # locations

    def location_keys(self, ing: Ingress, p: HTTPPath, regex_host: bool) -> list[tuple[str, str]] | None:
        """The nginx (modifier, pattern) pairs for one Ingress path; None if the path is unsafe."""
        a = self.settings[ing.key]
        if p.path_type == "ImplementationSpecific" and (a.use_regex or a.rewrite_target):
            return [("~*", "^" + p.path)] if regex_ok(p.path) else None
        if not _PLAIN_PATH.fullmatch(p.path):
            return None
        if p.path_type == "Exact" and p.path != "/" and p.path.endswith("/"):
            # nginx answers `P` without the slash with a 301 when a proxying `location = P/` exists (its
            # auto_redirect); a regex location has no such redirect, and goes before the other regexes
            return [("~", "^" + re.escape(p.path) + "$")]
        if p.path_type == "Exact":
            return [("=", p.path)]
        if p.path_type == "ImplementationSpecific":
            return [("~", "^" + re.escape(p.path))] if regex_host else [("", p.path)]
        path = p.path.rstrip("/") or "/"
        if regex_host:
            return [("~", "^/")] if path == "/" else [("~", "^" + re.escape(path) + "(/|$)")]
        return [("", "/")] if path == "/" else [("=", path), ("", path + "/")]

    def add_paths(self, ing: Ingress, path_type: str) -> None:
        a = self.settings[ing.key]
        for rule in ing.rules:
            draft = self.drafts[rule.host]
            for p in rule.paths:
                if p.path_type != path_type:
                    continue
                if too_long(p.path):
                    self.problem(ing, f"path {shown(p.path)} ({p.path_type}) is too long ({len(p.path)} characters; "
                                      f"knet accepts {MAX_VALUE}, as nginx reads at most {MAX_TOKEN} in one word); "
                                      "skipped")
                    continue
                keys = self.location_keys(ing, p, draft.regex)
                if keys is None:
                    kind = "regex" if p.path_type == "ImplementationSpecific" and (
                        a.use_regex or a.rewrite_target) else "path"
                    self.problem(ing, f"{kind} {p.path!r} ({p.path_type}) uses characters knet does not accept "
                                      "in nginx.conf; skipped")
                    continue
                upstream = self.backend(ing, p.backend, _balance(a))
                holders = []
                for key in keys:
                    held = draft.locations.get(key)
                    if held is None:
                        draft.locations[key] = Location(key[0], key[1], p.path, p.path_type, ing.key, upstream, a,
                                                        ssl_redirect=False)
                    elif not (key[0] == "=" and held.path_type == "Exact" and p.path_type == "Prefix"):
                        holders.append(held.ingress)  # an Exact path beating a Prefix one is no conflict
                if holders:
                    self.problem(ing, f"host {rule.host or '*'} path {p.path} ({p.path_type}) conflicts with "
                                      f"Ingress {holders[0]}, which is older; ignored where they overlap")

    def add_canary(self, ing: Ingress, rule_canary: ann.Canary) -> None:
        for rule in ing.rules:
            locations = self.drafts[rule.host].locations if rule.host in self.drafts else {}
            for p in rule.paths:
                mains = [k for k, loc in locations.items() if loc.path == p.path and loc.path_type == p.path_type]
                where = f"host {rule.host or '*'} path {p.path} ({p.path_type})"
                if not mains:
                    self.problem(ing, f"canary: no main Ingress serves {where}; ignored")
                    continue
                main = locations[mains[0]].ingress
                if main.partition("/")[0] != ing.namespace:
                    self.problem(ing, f"canary: {where} is served by Ingress {main}; a canary must be in the main "
                                      "Ingress's namespace; ignored")
                    continue
                held = locations[mains[0]].canary
                if held is not None:
                    self.problem(ing, f"canary: {where} already has the canary Ingress {held.ingress}, "
                                      "which is older; ignored")
                    continue
                upstream = self.backend(ing, p.backend, (self.cfg.load_balance, ""), canary=True)
                route = CanaryRoute(upstream, ing.key, rule_canary)
                for k in mains:
                    locations[k] = replace(locations[k], canary=route)

    # TLS

    def certificate(self, draft: _Draft) -> str:
        if draft.tls is None:
            return ""
        ing, secret_name = draft.tls
        secret = self.secrets.get(f"{ing.namespace}/{secret_name}")
        if secret is None:
            self.problem(ing, f"TLS secret {ing.namespace}/{secret_name} for host {draft.host} is missing or "
                              "not a valid TLS Secret; using the default certificate")
            return ""
        if not secret.covers(draft.host):
            self.problem(ing, f"TLS secret {secret.key} does not cover host {draft.host}; "
                              "using the default certificate")
            return ""
        weak = weakness(secret.cert_pem)
        if weak:
            self.problem(ing, f"TLS secret {secret.key} for host {draft.host}: {weak}; using the default certificate")
            return ""
        return self.certificate_file(secret)

    def certificate_file(self, secret: TLSSecret) -> str:
        """The file name of a Secret's chain and key, added to the certificates to write; its name carries a
        digest of the content, so a rotated Secret gets a new file."""
        digest = hashlib.sha256(secret.cert_pem + secret.key_pem).hexdigest()[:12]
        name = f"{secret.namespace}_{secret.name}_{digest}.pem"
        self.certificates[name] = secret.cert_pem + secret.key_pem
        return name

    def tls_secret(self, ing: Ingress, host: str) -> str:
        """The Secret that gives `host` TLS in this Ingress: a tls entry listing it, else an entry without
        hosts whose certificate covers it (as ingress-nginx does); "" for none."""
        for t in ing.tls:
            if any(host_matches(h, host) or h == host for h in t.hosts):
                return t.secret_name
        for t in ing.tls:
            secret = self.secrets.get(f"{ing.namespace}/{t.secret_name}")
            if not t.hosts and secret is not None and secret.covers(host):
                return t.secret_name
        return ""


def _ip_sort_key(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


def _location_order(loc: Location) -> tuple[int, int, str]:
    """Exact first, then prefixes, then regexes longest first (nginx tries regexes in file order), where the
    Exact paths written as regexes come first."""
    rank = {"=": 0, "": 1, "~": 2, "~*": 2}[loc.modifier]
    length = -len(loc.path) - (1 << 16 if loc.path_type == "Exact" else 0)
    return rank, length if rank == 2 else 0, loc.pattern


# Adds servers of other kinds (Gateway API) to the Ingress servers, with the same builder (upstreams,
# certificates, problems), and settles what they both claim; returns every server.
ServerHook = Callable[[Builder, list[Server]], list[Server]]


def build_model(classes: Iterable[IngressClass], ingresses: Iterable[Ingress], services: Iterable[Service],
                slices: Iterable[EndpointSlice], secrets: Iterable[TLSSecret],
                config: IngressConfig | None = None, more: ServerHook | None = None,
                ) -> tuple[IngressModel, list[Problem]]:
    """The snapshot nginx must serve, and the problems found (each names the Ingress at fault)."""
    cfg = config or IngressConfig()
    b = Builder(services, slices, secrets, cfg)
    classes = list(classes)
    ours = sorted((i for i in ingresses if ingress_is_ours(i, classes, cfg)), key=lambda i: i.age_key)
    canaries: list[tuple[Ingress, ann.Canary]] = []
    mains: list[Ingress] = []
    for ing in ours:
        parsed, messages = ann.parse_annotations(dict(ing.annotations))
        for message in messages:
            b.problem(ing, message)
        b.settings[ing.key] = resolve_settings(parsed, cfg)
        if parsed.canary is not None:
            canaries.append((ing, parsed.canary))
        else:
            mains.append(ing)
    if cfg.bind_host_to_namespace:
        owners = _host_owners(mains)
        mains = [_bound(b, ing, owners) for ing in mains]
        canaries = [(_bound(b, ing, owners), rule) for ing, rule in canaries]
    b.drafts[""] = _Draft("")
    for ing in mains:
        a = b.settings[ing.key]
        for rule in ing.rules:
            draft = b.drafts.setdefault(rule.host, _Draft(rule.host))
            regex = bool(a.use_regex or a.rewrite_target)
            draft.regex = draft.regex or (regex and any(p.path_type == "ImplementationSpecific" for p in rule.paths))
            if ing.key not in draft.owners:
                draft.owners.append(ing.key)
                _server_settings(b, ing, draft, a)
    for path_type in ("Exact", "Prefix", "ImplementationSpecific"):
        for ing in mains:
            b.add_paths(ing, path_type)
    for ing, rule in canaries:
        b.add_canary(ing, rule)
    catch_all = next(((i, i.default_backend) for i in mains if i.default_backend is not None), None)
    for ing in mains:
        if ing.default_backend is not None and not ing.rules and catch_all and catch_all[0] is not ing:
            b.problem(ing, f"defaultBackend is unused: Ingress {catch_all[0].key} is older and also sets one")
    b.drafts[""].fallback = b.drafts[""].fallback or catch_all
    error_upstream = _controller_backend(b)
    servers = [_finish(b, d, error_upstream) for _, d in sorted(b.drafts.items())]
    if more is not None:
        servers = more(b, servers)
    model = IngressModel(cfg, tuple(servers), tuple(b.upstreams[k] for k in sorted(b.upstreams)),
                         tuple(sorted(b.certificates.items())), error_upstream, tuple(sorted(i.key for i in ours)))
    return model, b.problems


def _host_owners(mains: list[Ingress]) -> dict[str, Ingress]:
    """host -> the oldest main Ingress with a rule for it (`mains` is oldest first; canaries claim nothing)."""
    owners: dict[str, Ingress] = {}
    for ing in mains:
        for rule in ing.rules:
            if rule.host:
                owners.setdefault(rule.host, ing)
    return owners


def _bound(b: Builder, ing: Ingress, owners: Mapping[str, Ingress]) -> Ingress:
    """The Ingress without its rules for hosts that another namespace claimed first, with a problem for each."""
    lost = sorted({r.host for r in ing.rules if r.host in owners and owners[r.host].namespace != ing.namespace})
    for host in lost:
        b.problem(ing, f"host {host} belongs to namespace {owners[host].namespace} (Ingress {owners[host].key} "
                       "claimed it first); rules for it ignored")
    return replace(ing, rules=tuple(r for r in ing.rules if r.host not in lost)) if lost else ing


def _server_settings(b: Builder, ing: Ingress, draft: _Draft, a: Annotations) -> None:
    """TLS, app-root and the host's default backend: the oldest Ingress that sets each wins."""
    secret = b.tls_secret(ing, draft.host) if draft.host else ""
    if secret and draft.tls is None:
        draft.tls = (ing, secret)
    elif secret and draft.tls and secret != draft.tls[1]:
        b.problem(ing, f"TLS for host {draft.host} comes from Ingress {draft.tls[0].key}, which is older; "
                       f"secret {secret} ignored")
    if a.app_root and draft.app_root is None:
        draft.app_root = (ing.key, a.app_root)
    elif a.app_root and draft.app_root and a.app_root != draft.app_root[1]:
        b.problem(ing, f"app-root for host {draft.host or '*'} comes from Ingress {draft.app_root[0]}, "
                       "which is older; ignored")
    if ing.default_backend is not None and draft.fallback is None:
        draft.fallback = (ing, ing.default_backend)


def _controller_backend(b: Builder) -> str:
    ref = _parse_service_ref(b.cfg.default_backend) if b.cfg.default_backend else None
    if ref is None:
        return ""
    name, why = b.upstream(ref[0], ref[1], (b.cfg.load_balance, ""))
    if why:
        b.problems.append(Problem("IngressConfig", "", "default", f"defaultBackend: {why}; using the built-in 404"))
        return ""
    return name


def _finish(b: Builder, draft: _Draft, default_upstream: str) -> Server:
    certificate = b.certificate(draft)
    tls = draft.tls is not None
    locations = [replace(loc, ssl_redirect=loc.settings.force_ssl_redirect or (tls and bool(
        loc.settings.ssl_redirect))) for loc in draft.locations.values()]
    if ("", "/") not in draft.locations and ("~", "^/") not in draft.locations:
        settings = resolve_settings(Annotations(), b.cfg)
        if draft.fallback is not None:
            ing, ref = draft.fallback
            upstream, owner = b.backend(ing, ref, _balance(settings)), ing.key
        else:
            upstream, owner = default_upstream, ""
        locations.append(Location("", "/", "/", "Fallback", owner, upstream, settings,
                                  ssl_redirect=tls and bool(settings.ssl_redirect)))
    return Server(draft.host, certificate, tuple(sorted(locations, key=_location_order)),
                  draft.app_root[1] if draft.app_root else "")
