"""Ingress model -> nginx.conf, through the jinja2 templates beside this module.

The renderer decides nginx mechanics only (variable, map, zone and upstream names, quoting); what
to serve is the model's. Output is deterministic: every list is built in a sorted order and names
are indexes into sorted sets, so the same snapshot gives the same bytes.

Quoting: every string that came from an object was validated by the model or the annotation
parsers against a narrow grammar. It is still printed through `_quote`, which refuses control
characters and quotes, and escapes backslashes the way nginx's parser undoes them, so a regex
reaches PCRE exactly as validated. `$` is refused except where the grammar allows nginx variables
(rewrite captures, hash keys) and in regexes, which nginx does not interpolate.

Endpoint updates: with `Runtime.dynamic_endpoints` (needs Debian's libnginx-mod-http-lua), upstream
blocks hold no addresses; a Lua balancer reads them from a shared dict that the controller replaces
by POSTing `render_endpoints(model)` to the control socket, so endpoint-only changes need no reload
and the rendered nginx.conf does not change. Without it, addresses are rendered into the upstream
blocks and every endpoint change is a reload.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import jinja2

from operators.ingress.annotations import Annotations
from operators.ingress.limits import hash_bucket_size, hash_max_size
from operators.ingress.model import IngressModel, Location, Server, Upstream, resolve_settings
from operators.ingress.render_routes import (
    STANDARD_HEADERS,
    RouteNames,
    action_view,
    condition_maps,
    mirror_path,
    mirror_share_percent,
    route_map,
)
from operators.ingress.routing import MIRROR_ALL, Cors, Listen
from operators.kube.services import field

T = TypeVar("T")
_SAFE_PATH = re.compile(r"^(/|[A-Za-z0-9_.])[A-Za-z0-9/._+-]*$")  # relative: to nginx -p (`knet render --out`)
_HASH_VAR = re.compile(r"\$([a-z_][a-z0-9_]*)")
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("operators.ingress", "templates"), autoescape=False,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                          keep_trailing_newline=True)


@dataclass(frozen=True)
class Runtime:
    """Where the supervised nginx keeps its files and what it listens on (from the shell, not from users)."""

    prefix: str = "/var/lib/knet/ingress"
    certificate_dir: str = "/var/lib/knet/ingress/certs"
    default_certificate: str = "/var/lib/knet/ingress/certs/default.pem"  # chain + key in one file
    pid_file: str = "/var/lib/knet/ingress/nginx.pid"
    temp_dir: str = "/var/lib/knet/ingress/tmp"
    error_log: str = "stderr"
    access_log: str = "/dev/stdout"  # or "off"
    http_port: int = 80
    https_port: int = 443
    status_port: int = 10254  # 127.0.0.1 only: /healthz and /nginx_status
    other_ports: tuple[int, ...] = ()  # the pod's servers beside nginx (health, metrics): no Gateway listener's
    gateway_ports: tuple[int, int] | None = None  # nginx ports for Gateways on their own addresses; None: shared
    ipv6: bool = True
    worker_processes: int = 0  # 0: one per CPU
    dynamic_endpoints: bool = False
    modules_dir: str = "/usr/lib/nginx/modules"
    control_socket: str = "/var/lib/knet/ingress/control.sock"  # POST /endpoints (dynamic mode)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Runtime:
        """Read camelCase or snake_case keys (for `knet render ingress`); unknown keys are ignored."""
        values = {f.name: value for f in fields(cls) if (value := field(data or {}, _camel(f.name))) is not None}
        values.update({k: tuple(v) for k, v in values.items() if isinstance(v, list)})
        return replace(cls(), **values)

    def check(self) -> None:
        """Raise ValueError on a path or port nginx could misread: these come from the shell's own flags."""
        paths = [self.prefix, self.certificate_dir, self.default_certificate, self.pid_file, self.temp_dir,
                 self.modules_dir, self.control_socket]
        paths += [p for p in (self.error_log, self.access_log) if p not in ("stderr", "off")]
        bad = [p for p in paths if not isinstance(p, str) or not _SAFE_PATH.fullmatch(p)]
        ports = [self.http_port, self.https_port, self.status_port]
        if self.gateway_ports is not None:
            ports += list(self.gateway_ports)
        if (bad or not all(isinstance(p, int) and 1 <= p <= 65535 for p in ports) or len(set(ports[:3])) < 3
                or (self.gateway_ports is not None and self.gateway_ports[0] > self.gateway_ports[1])):
            raise ValueError(f"unsafe runtime paths {bad} or ports {ports}")

    def taken_ports(self) -> tuple[int, ...]:
        """The ports a Gateway listener may not have: nginx's status server's and the pod's other servers'."""
        return (self.status_port, *self.other_ports)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def _quote(value: object, variables: bool = False, regex: bool = False) -> str:
    """A double-quoted nginx string; see the module docstring for what is refused."""
    text = str(value)
    if any(c in text for c in '"\'\n\r\t\0') or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"refusing to quote {text!r} for nginx.conf")
    if "$" in text and not (variables or regex):
        raise ValueError(f"refusing to put {text!r} into nginx.conf: it would be interpolated")
    return '"' + text.replace("\\", "\\\\") + '"'


_ENV.filters["q"] = _quote
_ENV.filters["qvar"] = lambda v: _quote(v, variables=True)
_ENV.filters["qre"] = lambda v: _quote(v, regex=True)


def _server_names(server: Server) -> list[str]:
    if not server.host:
        return ["_"]
    if server.gateway:  # nginx's own `*.` is the Gateway API's: a suffix over any number of labels
        return [server.host]
    if server.host.startswith("*."):
        return [_quote("~^[^.]+" + re.escape(server.host[1:]) + "$", regex=True)]
    return [server.host]


def _rewrite_regex(loc: Location) -> str:
    if loc.modifier == "~*":
        return "(?i)" + loc.pattern
    if loc.modifier == "~":
        return loc.pattern
    return "^" + re.escape(loc.pattern) + ("$" if loc.modifier == "=" else "")


class _Names:
    """Zone, map and variable names: indexes into sorted sets, so they are stable for a snapshot."""

    def __init__(self, model: IngressModel, runtime: Runtime) -> None:
        locations = [loc for s in model.servers for loc in s.locations]
        settings = [(loc, loc.settings) for loc in locations]
        self.rps = _index((loc.ingress, a.limit_rps) for loc, a in settings if a.limit_rps)
        self.conn = _index((loc.ingress, a.limit_connections) for loc, a in settings if a.limit_connections)
        self.cookies = _index(u.key for u in model.upstreams if u.method == "cookie")
        self.set_cookies = _index(_set_cookie(loc) for loc, a in settings if a.affinity)
        self.origins = _index(a.cors.origins for _, a in settings if a.cors and a.cors.origins != ("*",))
        self.gateway_origins = _index(loc.action.cors.origins for loc in locations if loc.action and loc.action.cors)
        self.usable = {u.name for u in model.upstreams if u.endpoints or runtime.dynamic_endpoints}
        self.routes = RouteNames(model, self.usable)
        self.server_index = {id(s): i for i, s in enumerate(model.servers)}
        self.canaries: dict[tuple[str, str, str], int] = {}  # (host, path, pathType): both Prefix locations
        for s in model.servers:
            for loc in s.locations:
                if loc.canary and loc.canary.upstream in self.usable and loc.upstream in self.usable:
                    self.canaries.setdefault((s.host, loc.path, loc.path_type), len(self.canaries))


def _index(items: Iterable[T]) -> dict[T, int]:
    return {item: i for i, item in enumerate(sorted(set(items)))}


def _set_cookie(loc: Location) -> tuple[str, str, int]:
    a = loc.settings.affinity
    assert a is not None
    path = a.path or (loc.path.rstrip("/") or "/" if loc.modifier in ("", "=") else "/")
    return a.cookie, path, a.max_age


def _location(server: Server, loc: Location, names: _Names, rt: Runtime) -> dict[str, Any]:
    a = loc.settings
    if loc.modifier == "@":  # a route rule's named location: the model names it knet_r<N>
        if not re.fullmatch(r"knet_r[0-9]+", loc.pattern):
            raise ValueError(f"refusing the named location {loc.pattern!r}")
        arg = "@" + loc.pattern
    else:
        arg = f"{loc.modifier} {_quote(loc.pattern, regex=loc.modifier.startswith('~'))}".lstrip()
    view: dict[str, Any] = {
        "arg": arg,
        "comment": f"{loc.path_type} {loc.path}" + (f" from {loc.ingress}" if loc.ingress else ""),
        "ssl_redirect": loc.ssl_redirect,
        "redirect": (301, a.permanent_redirect) if a.permanent_redirect else (
            (302, a.temporal_redirect) if a.temporal_redirect else None),
        "deny": a.deny_source_ranges, "allow": a.allow_source_ranges, "deny_all": a.deny_all,
        "limit_req": "", "limit_conn": "", "body_size": a.proxy_body_size, "cors": None, "rewrite": None,
        "target": "", "status": 0, "set_cookie": "", "errors": "", "fallback": "", "dispatch": "",
        "headers": [], "response_hide": [], "response_add": [], "mirrors": [], "redirect_to": None,
    }
    if loc.dispatch is not None:
        view["dispatch"] = f"$knet_route_{names.routes.servers[names.server_index[id(server)]]}"
        return view
    if a.limit_rps:
        view["limit_req"] = f"zone=knet_rps_{names.rps[(loc.ingress, a.limit_rps)]} burst={a.limit_rps * 5} nodelay"
    if a.limit_connections:
        view["limit_conn"] = f"knet_conn_{names.conn[(loc.ingress, a.limit_connections)]} {a.limit_connections}"
    if a.cors:
        origin = "*" if a.cors.origins == ("*",) else f"$knet_cors_origin_{names.origins[a.cors.origins]}"
        view["cors"] = {"origin": origin, "credentials": a.cors.credentials, "max_age": a.cors.max_age,
                        "methods": _quote(", ".join(a.cors.methods)), "headers": _quote(", ".join(a.cors.headers)),
                        "expose": "", "vary": origin != "*"}
    if a.rewrite_target and loc.path_type != "Fallback":
        view["rewrite"] = (_rewrite_regex(loc), a.rewrite_target, " break")
    if loc.action is not None:
        return _action_location(view, server, loc, names, rt)
    if loc.upstream not in names.usable:
        view["status"] = 503 if loc.upstream or loc.ingress else 404
        return view
    grpc = a.backend_protocol in ("GRPC", "GRPCS")
    scheme = {"HTTP": "http", "HTTPS": "https", "GRPC": "grpc", "GRPCS": "grpcs"}[a.backend_protocol]
    index = names.canaries.get((server.host, loc.path, loc.path_type))
    target = loc.upstream if index is None else f"$knet_canary_{index}"
    if index is not None and rt.dynamic_endpoints:  # the balancer sends a canary without peers to main
        view["fallback"] = loc.upstream
    _proxy_settings(view, a, a.upstream_vhost or "$host")
    view.update(target=f"{scheme}://{target}", proto="grpc" if grpc else "proxy")
    if a.affinity:
        view["set_cookie"] = f"$knet_affinity_set_{names.set_cookies[_set_cookie(loc)]}"
    if a.custom_http_errors:
        view["errors"] = " ".join(map(str, a.custom_http_errors))
    return view


def _proxy_settings(view: dict[str, Any], a: Annotations, host: str) -> None:
    view.update(connect=f"{a.proxy_connect_timeout}s", send=f"{a.proxy_send_timeout}s",
                read=f"{a.proxy_read_timeout}s", next_upstream=" ".join(a.proxy_next_upstream),
                tries=a.proxy_next_upstream_tries, proto="proxy",
                headers=[(n, _quote(host, variables=True) if n == "Host" else v) for n, v in STANDARD_HEADERS])


def _action_location(view: dict[str, Any], server: Server, loc: Location, names: _Names,
                     rt: Runtime) -> dict[str, Any]:
    """A route rule's named location: the Ingress location's proxy settings with the rule's action."""
    action = loc.action
    assert action is not None
    _proxy_settings(view, loc.settings, "$knet_host")
    view.update(action_view(loc, server, names.routes, _quote, "$knet_host"))
    if action.cors:
        view["cors"] = _gateway_cors(action.cors, names)
    if action.rewrite:
        flag = "" if action.redirect else " break"  # a redirect reads the new $uri before `return`
        view["rewrite"] = (action.rewrite[0], action.rewrite[1], flag)
    return view


def _gateway_cors(c: Cors, names: _Names) -> dict[str, Any]:
    """A CORS filter as the location template's CORS block: the request's Origin echoed when allowed (also for
    "*", so that credentials may be allowed with it), a wildcard of methods or headers echoing the requested."""
    def listed(values: tuple[str, ...], requested: str) -> str:
        return requested if values == ("*",) else _quote(", ".join(values))

    return {"origin": f"$knet_gw_cors_origin_{names.gateway_origins[c.origins]}", "credentials": c.credentials,
            "max_age": c.max_age, "methods": listed(c.methods, "$http_access_control_request_method"),
            "headers": listed(c.headers, "$http_access_control_request_headers"),
            "expose": _quote(", ".join(c.expose)) if c.expose else "", "vary": True}


def _canary_maps(model: IngressModel, names: _Names) -> list[dict[str, Any]]:
    out = []
    for s in model.servers:
        for loc in s.locations:
            index = names.canaries.get((s.host, loc.path, loc.path_type))
            if index is None or loc.canary is None or index < len(out):
                continue
            rule = loc.canary.rule
            header = "$http_" + rule.header.lower().replace("-", "_") if rule.header else ""
            out.append({"index": index, "main": loc.upstream, "canary": loc.canary.upstream, "header": header,
                        "header_value": rule.header_value, "cookie": "$cookie_" + rule.cookie if rule.cookie else "",
                        "weight": rule.weight, "comment": f"{s.host or '*'} {loc.path_type} {loc.path}"})
    return out


def _upstream(u: Upstream, names: _Names) -> dict[str, Any]:
    variables = [f"knet_affinity_{names.cookies[u.key]}"] if u.method == "cookie" else _HASH_VAR.findall(u.key)
    return {"name": u.name, "service": u.service, "method": u.method, "endpoints": u.endpoints,
            "hash": "".join("$" + v for v in variables), "lua_vars": variables}


def render_config(model: IngressModel, runtime: Runtime | None = None) -> str:
    """The complete nginx.conf for the model (the shell writes it, runs `nginx -t`, then reloads)."""
    rt = runtime or Runtime()
    rt.check()
    names = _Names(model, rt)
    servers = [{
        "names": _server_names(s),
        "listens": _listens(s, rt),
        "certificate": f"{rt.certificate_dir}/{s.certificate}" if s.certificate else rt.default_certificate,
        "app_root": s.app_root,
        "locations": [_location(s, loc, names, rt) for loc in s.locations],
        "comment": (s.host or "catch-all") + (f" (Gateway API, port {s.listens[0].port})" if s.gateway else ""),
        "mirrors": sorted({(mirror_path(u, share), u, share if share < MIRROR_ALL else 0) for loc in s.locations
                           if loc.action for u, share in loc.action.mirrors if u in names.usable}),
        "none": s.gateway,
    } for s in model.servers]
    servers += _default_servers(model, rt, names)
    for s in servers:
        s["errors"] = any(loc["errors"] for loc in s["locations"]) and model.error_upstream in names.usable
        # without the controller's default backend, nginx answers the listed codes with its own page
        s["status_pages"] = [] if s["errors"] else sorted(
            {int(code) for loc in s["locations"] for code in loc["errors"].split()})
    origins = [(f"knet_cors_origin_{i}", [_origin_key(o) for o in origins])
               for origins, i in sorted(names.origins.items(), key=lambda kv: kv[1])]
    origins += [(f"knet_gw_cors_origin_{i}", [_gateway_origin_key(o) for o in origins])
                for origins, i in sorted(names.gateway_origins.items(), key=lambda kv: kv[1])]
    canaries = _canary_maps(model, names)
    return _ENV.get_template("nginx.conf.j2").render(
        rt=rt,
        hashes=_hash_sizes([s.host for s in model.servers if s.host and not s.host.startswith("*.")],
                           [[k for k in keys if not k.startswith('"~')] for _, keys in origins]
                           + [[c["header_value"]] for c in canaries]),
        servers=servers,
        upstreams=[_upstream(u, names) for u in model.upstreams if u.name in names.usable],
        rps_zones=[(i, rate) for (_, rate), i in sorted(names.rps.items(), key=lambda kv: kv[1])],
        conn_zones=sorted(names.conn.values()),
        cookies=sorted((i, c) for c, i in names.cookies.items()),
        set_cookies=sorted((i, c) for c, i in names.set_cookies.items()),
        origins=origins,
        canaries=canaries,
        error_upstream=model.error_upstream,
        conditions=condition_maps(names.routes, lambda v: _quote(v, regex=True)),
        route_maps=[route_map(names.routes.servers[i], s, names.routes, lambda v: _quote(v, regex=True))
                    for i, s in enumerate(model.servers) if s.gateway],
        splits=names.routes.splits,
        mirror_shares=[(share, mirror_share_percent(share)) for share in sorted(
            {share for s in model.servers for loc in s.locations if loc.action for _, share in loc.action.mirrors
             if share < MIRROR_ALL})],
        adds=names.routes.adds,
        status_upstreams=names.routes.status_upstreams,
    )


def _listens(server: Server, rt: Runtime) -> list[tuple[int, bool, bool]]:
    """(port, TLS, default_server) for each port the server listens on: the catch-all is the default."""
    listens = server.listens or (Listen(rt.http_port, False), Listen(rt.https_port, True))
    return [(x.port, x.tls, not server.host) for x in listens]


def _default_servers(model: IngressModel, rt: Runtime, names: _Names) -> list[dict[str, Any]]:
    """A 404 catch-all for each port that no catch-all server listens on (every port needs a default)."""
    ports: dict[int, bool] = {}
    covered: set[int] = set()
    for s in model.servers:
        for port, tls, default in _listens(s, rt):
            ports.setdefault(port, tls)
            if default:
                covered.add(port)
    fallback = Location("", "/", "/", "Fallback", "", "", resolve_settings(Annotations(), model.config),
                        ssl_redirect=False)
    return [{"names": ["_"], "listens": [(port, tls, True)], "certificate": rt.default_certificate,
             "app_root": "", "locations": [_location(Server("", "", ()), fallback, names, rt)],
             "comment": f"catch-all of port {port}", "mirrors": [], "none": False}
            for port, tls in sorted(ports.items()) if port not in covered]


def _hash_sizes(server_names: list[str], maps: list[list[str]]) -> dict[str, tuple[int, int]]:
    """(bucket size, max size) of the server-name and map hashes, from their longest key and their count."""
    longest_key = max((len(k) for keys in maps for k in keys), default=0)
    return {"server_names": (hash_bucket_size(max(map(len, server_names), default=0)),
                             hash_max_size(len(server_names), 4096)),
            "map": (hash_bucket_size(longest_key), hash_max_size(max(map(len, maps), default=0), 2048))}


def _gateway_origin_key(origin: str) -> str:
    """A map key for one origin a Gateway API CORS filter allows: any non-empty Origin for "*", a wildcard host
    over any number of labels, else the origin itself."""
    if origin == "*":
        return _quote("~.", regex=True)
    if "://*." not in origin:
        return _quote(origin)
    scheme, rest = origin.split("://*.", 1)
    return _quote(f"~^{scheme}://[A-Za-z0-9.-]+\\.{re.escape(rest)}$", regex=True)


def _origin_key(origin: str) -> str:
    """A map key for one allowed origin: itself, or an anchored regex for `scheme://*.domain[:port]`."""
    if "://*." not in origin:
        return _quote(origin)
    scheme, rest = origin.split("://*.", 1)
    return _quote(f"~^{scheme}://[^.]+\\.{re.escape(rest)}$", regex=True)


def render_endpoints(model: IngressModel) -> str:
    """The body to POST to the control socket in dynamic mode: `name ip port ip port ...` per upstream."""
    lines = []
    for u in model.upstreams:
        pairs = [e.rpartition(":") for e in u.endpoints]
        lines.append(" ".join([u.name] + [f"{host.strip('[]')} {port}" for host, _, port in pairs]))
    return "".join(line + "\n" for line in lines)

