"""Strict parsing of the `nginx.ingress.kubernetes.io/*` annotations knet supports.

Every value is parsed into a typed value from a narrow grammar or rejected with a message (the
controller turns it into an Event); the renderer only ever prints these typed values, so nothing a
user writes reaches nginx.conf as written. Raw-configuration annotations (`*-snippet`) are refused:
they were the root of ingress-nginx's remote-code-execution CVEs.

Two deliberate approximations, documented here because users will ask:
- `load-balance: ewma` becomes `least_conn`. ingress-nginx's EWMA scores peers by decaying latency;
  knet's least_conn picks the peer with the fewest in-flight requests (over all workers), which is
  what a latency score converges to under load, without a per-request Lua feedback loop.
- `affinity: cookie` hashes the affinity cookie consistently onto the endpoints (setting it on the
  first response). A client keeps its endpoint while the endpoint set is stable; when endpoints
  change only the clients of the changed endpoints move (ingress-nginx behaves the same way).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from operators.ingress.limits import MAX_TOKEN, MAX_VALUE, shown, too_long
from operators.kube.parse import is_dns_subdomain, parse_cidr

PREFIX = "nginx.ingress.kubernetes.io/"
BACKEND_PROTOCOLS = ("HTTP", "HTTPS", "GRPC", "GRPCS")
NEXT_UPSTREAM = ("error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504",
                 "http_403", "http_404", "http_429", "non_idempotent", "off")
DEFAULT_AFFINITY_COOKIE = "INGRESSCOOKIE"
DEFAULT_CORS_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS")
DEFAULT_CORS_HEADERS = ("DNT", "Keep-Alive", "User-Agent", "X-Requested-With", "If-Modified-Since",
                        "Cache-Control", "Content-Type", "Range", "Authorization")
DEFAULT_CORS_MAX_AGE = 1728000

_URL_CHARS = r"[A-Za-z0-9/._~%!*+,=:@&()-]"
_PATH = re.compile(rf"^/{_URL_CHARS}*$")
_REWRITE = re.compile(rf"^(?:/|\$[1-9])(?:{_URL_CHARS}|\?|\$[1-9])*$")
_HOST_PORT = r"(?P<host>[a-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
_URL = re.compile(rf"^https?://{_HOST_PORT}(?:/{_URL_CHARS}*(?:\?(?:{_URL_CHARS}|\?)*)?)?$")
_ORIGIN = re.compile(r"^(?P<scheme>https?)://(?P<wild>\*\.)?(?P<host>[a-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?$")
_VHOST = re.compile(rf"^{_HOST_PORT}$")
_COOKIE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_HEADER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_HEADER_VALUE = re.compile(r"^[A-Za-z0-9._~:/=+-]{1,128}$")
_METHOD = re.compile(r"^[A-Z]{1,16}$")
_SIZE = re.compile(r"^[0-9]{1,9}[kKmMgG]?$")
_SECONDS = re.compile(r"^([0-9]{1,5})s?$")
_HASH_VARS = re.compile(r"\$(request_uri|uri|args|query_string|remote_addr|binary_remote_addr|host|scheme|"
                        r"request_method|server_name|(?:arg|http|cookie)_[a-z0-9_]{1,64})")
_TRUE, _FALSE = ("true", "1", "t", "yes"), ("false", "0", "f", "no")


class _Invalid(ValueError):
    """A value outside an annotation's grammar (internal: callers get messages, never exceptions)."""


@dataclass(frozen=True)
class Affinity:
    cookie: str
    path: str  # "" means the location's path
    max_age: int  # seconds; 0 for a session cookie


@dataclass(frozen=True)
class Canary:
    header: str  # "" when not routed by header
    header_value: str  # "" means the values "always" / "never"
    cookie: str
    weight: int  # 0-100


@dataclass(frozen=True)
class Cors:
    origins: tuple[str, ...]  # ("*",) or origins, where `https://*.example.com` covers one label
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    credentials: bool
    max_age: int


@dataclass(frozen=True)
class Annotations:
    """The typed annotations of one Ingress; None/""/() mean "not set" (controller defaults apply)."""

    rewrite_target: str = ""
    use_regex: bool = False
    app_root: str = ""
    ssl_redirect: bool | None = None
    force_ssl_redirect: bool = False
    backend_protocol: str = "HTTP"
    proxy_body_size: str = ""
    proxy_connect_timeout: int | None = None
    proxy_send_timeout: int | None = None
    proxy_read_timeout: int | None = None
    proxy_next_upstream: tuple[str, ...] = ()
    proxy_next_upstream_tries: int | None = None
    allow_source_ranges: tuple[str, ...] = ()
    deny_source_ranges: tuple[str, ...] = ()
    deny_all: bool = False  # an access list could not be read: fail closed
    limit_rps: int = 0
    limit_connections: int = 0
    affinity: Affinity | None = None
    load_balance: str = ""  # round_robin | least_conn; "" means the controller default
    upstream_hash_by: str = ""  # nginx variables only, e.g. "$request_uri" or "$host$arg_user"
    canary: Canary | None = None
    cors: Cors | None = None
    permanent_redirect: str = ""
    temporal_redirect: str = ""
    upstream_vhost: str = ""
    custom_http_errors: tuple[int, ...] = ()


def _bool(value: str) -> bool:
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise _Invalid("is not a boolean (true or false)")


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not re.fullmatch(r"[0-9]{1,9}", value.strip()) or not lo <= int(value) <= hi:
            raise _Invalid(f"is not a whole number in {lo}-{hi}")
        return int(value)
    return parse


def _match(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not pattern.fullmatch(value):
            raise _Invalid(f"is not {what}")
        return value
    return parse


def _host_ok(m: re.Match[str] | None) -> bool:
    return bool(m) and is_dns_subdomain(m["host"]) and (m["port"] is None or 1 <= int(m["port"]) <= 65535)


def _url(value: str) -> str:
    if not _host_ok(_URL.fullmatch(value)):
        raise _Invalid("is not an http(s) URL of plain characters")
    return value


def _seconds(value: str) -> int:
    m = _SECONDS.fullmatch(value.strip())
    if not m or not 1 <= int(m[1]) <= 86400:
        raise _Invalid("is not a number of seconds in 1-86400")
    return int(m[1])


def _size(value: str) -> str:
    if not _SIZE.fullmatch(value.strip()):
        raise _Invalid("is not a size such as 8m, 512k or 0 (unlimited)")
    return value.strip()


def _protocol(value: str) -> str:
    if value.strip().upper() not in BACKEND_PROTOCOLS:
        raise _Invalid(f"is not one of {', '.join(BACKEND_PROTOCOLS)}")
    return value.strip().upper()


def _next_upstream(value: str) -> tuple[str, ...]:
    words = tuple(value.split())
    bad = [w for w in words if w not in NEXT_UPSTREAM]
    if not words or bad or ("off" in words and len(words) > 1):
        raise _Invalid(f"must be 'off' or words from {', '.join(NEXT_UPSTREAM[:-1])}")
    return words


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _cidrs(value: str) -> tuple[str, ...]:
    items = _list(value)
    nets = [parse_cidr(v) for v in items]
    bad = [v for v, n in zip(items, nets, strict=True) if n is None]
    if not items or bad:
        raise _Invalid(f"has entries that are not CIDRs: {bad}" if bad else "is empty")
    return tuple(dict.fromkeys(str(n) for n in nets))


def _balance(value: str) -> str:
    choice = {"round_robin": "round_robin", "least_conn": "least_conn", "ewma": "least_conn"}.get(value.strip())
    if choice is None:
        raise _Invalid("is not one of round_robin, least_conn, ewma")
    return choice


def _hash_by(value: str) -> str:
    if not value or _HASH_VARS.sub("", value) != "":
        raise _Invalid("must be nginx variables only, such as $request_uri, $remote_addr, $http_x_user "
                       "or $cookie_session")
    return value


def _origins(value: str) -> tuple[str, ...]:
    items = _list(value)
    if items == ["*"]:
        return ("*",)
    if not items or not all(_host_ok(_ORIGIN.fullmatch(o)) for o in items):
        raise _Invalid("must be '*' or comma-separated origins such as https://example.com or https://*.example.com")
    return tuple(dict.fromkeys(items))


def _tokens(pattern: re.Pattern[str], what: str, star: bool = False) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        items = _list(value)
        if star and items == ["*"]:
            return ("*",)
        if not items or not all(pattern.fullmatch(i) for i in items):
            raise _Invalid(f"must be a comma-separated list of {what}")
        return tuple(dict.fromkeys(items))
    return parse


def _error_codes(value: str) -> tuple[int, ...]:
    codes = tuple(_int(400, 599)(v) for v in _list(value))
    if not codes:
        raise _Invalid("is empty")
    return tuple(sorted(set(codes)))


# annotation (without prefix) -> (Annotations field, parser). Grouped ones are parsed in `_groups`.
_SIMPLE: dict[str, tuple[str, Callable[[str], Any]]] = {
    "rewrite-target": ("rewrite_target", _match(_REWRITE, "a path of plain characters and $1-$9 captures")),
    "use-regex": ("use_regex", _bool),
    "app-root": ("app_root", _match(_PATH, "an absolute path of plain characters")),
    "ssl-redirect": ("ssl_redirect", _bool),
    "force-ssl-redirect": ("force_ssl_redirect", _bool),
    "backend-protocol": ("backend_protocol", _protocol),
    "proxy-body-size": ("proxy_body_size", _size),
    "proxy-connect-timeout": ("proxy_connect_timeout", _seconds),
    "proxy-send-timeout": ("proxy_send_timeout", _seconds),
    "proxy-read-timeout": ("proxy_read_timeout", _seconds),
    "proxy-next-upstream": ("proxy_next_upstream", _next_upstream),
    "proxy-next-upstream-tries": ("proxy_next_upstream_tries", _int(0, 100)),
    "limit-rps": ("limit_rps", _int(1, 1_000_000)),
    "limit-connections": ("limit_connections", _int(1, 1_000_000)),
    "load-balance": ("load_balance", _balance),
    "upstream-hash-by": ("upstream_hash_by", _hash_by),
    "permanent-redirect": ("permanent_redirect", _url),
    "temporal-redirect": ("temporal_redirect", _url),
    "upstream-vhost": ("upstream_vhost", lambda v: v if _host_ok(_VHOST.fullmatch(v)) else _fail("is not host[:port]")),
    "custom-http-errors": ("custom_http_errors", _error_codes),
}
_ACCESS = ("whitelist-source-range", "allowlist-source-range", "denylist-source-range")
_AFFINITY = ("affinity", "session-cookie-name", "session-cookie-path", "session-cookie-max-age")
_CANARY = ("canary", "canary-by-header", "canary-by-header-value", "canary-by-cookie", "canary-weight")
_CORS = ("enable-cors", "cors-allow-origin", "cors-allow-methods", "cors-allow-headers",
         "cors-allow-credentials", "cors-max-age")
# values that become many nginx words (one per item, each bounded by its grammar): no length limit
_SPLIT = ("cors-allow-origin",)
KNOWN = frozenset(_SIMPLE) | frozenset(_ACCESS + _AFFINITY + _CANARY + _CORS)


def _fail(message: str) -> str:
    raise _Invalid(message)


class _Reader:
    """Reads prefixed annotations, recording a message for each rejected value."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def get(self, name: str, parse: Callable[[str], Any], default: Any = None) -> Any:
        value = self.raw.get(PREFIX + name)
        if value is None:
            return default
        if too_long(value) and name not in _SPLIT:
            self.problems.append(f"annotation {name}: {shown(value)} is too long ({len(value)} characters; knet "
                                 f"accepts {MAX_VALUE}, as nginx reads at most {MAX_TOKEN} in one word); ignored")
            return default
        try:
            return parse(value)
        except _Invalid as e:
            self.problems.append(f"annotation {name}: {value!r} {e}; ignored")
            return default

    def unused(self, names: tuple[str, ...], because: str) -> None:
        for name in names:
            if PREFIX + name in self.raw:
                self.problems.append(f"annotation {name} has no effect {because}")


def _access(r: _Reader) -> dict[str, Any]:
    """Source-range lists; one that cannot be read denies everything (failing open would expose the backend)."""
    out: dict[str, Any] = {}
    allow_name = next((n for n in _ACCESS[1::-1] if PREFIX + n in r.raw), "")
    for name, key in ((allow_name, "allow_source_ranges"), ("denylist-source-range", "deny_source_ranges")):
        value = r.raw.get(PREFIX + name) if name else None
        if value is None:
            continue
        try:
            out[key] = _cidrs(value)
        except _Invalid as e:
            r.problems.append(f"annotation {name}: {value!r} {e}; all requests are denied until it is fixed")
            out["deny_all"] = True
    if allow_name == "allowlist-source-range" and PREFIX + "whitelist-source-range" in r.raw:
        r.problems.append("annotation whitelist-source-range is ignored: allowlist-source-range is set")
    return out


def _affinity(r: _Reader) -> Affinity | None:
    mode = r.get("affinity", _match(re.compile(r"^cookie$"), "'cookie' (the only affinity mode)"))
    if mode is None:
        r.unused(_AFFINITY[1:], "without affinity: cookie")
        return None
    return Affinity(
        cookie=r.get("session-cookie-name", _match(_COOKIE, "a cookie name of letters, digits and _"),
                     DEFAULT_AFFINITY_COOKIE),
        path=r.get("session-cookie-path", _match(_PATH, "an absolute path of plain characters"), ""),
        max_age=r.get("session-cookie-max-age", _int(0, 315_360_000), 0),
    )


def _canary(r: _Reader) -> Canary | None:
    if not r.get("canary", _bool, False):
        r.unused(_CANARY[1:], "without canary: \"true\"")
        return None
    header = r.get("canary-by-header", _match(_HEADER, "an HTTP header name"), "")
    value = r.get("canary-by-header-value", _match(_HEADER_VALUE, "a header value of plain characters"), "")
    if value and not header:
        r.unused(("canary-by-header-value",), "without canary-by-header")
        value = ""
    return Canary(header, value, r.get("canary-by-cookie", _match(_COOKIE, "a cookie name of letters, digits and _"),
                                       ""), r.get("canary-weight", _int(0, 100), 0))


def _cors(r: _Reader) -> Cors | None:
    if not r.get("enable-cors", _bool, False):
        r.unused(_CORS[1:], "without enable-cors: \"true\"")
        return None
    return Cors(
        origins=r.get("cors-allow-origin", _origins, ("*",)),
        methods=r.get("cors-allow-methods", _tokens(_METHOD, "upper-case HTTP methods"), DEFAULT_CORS_METHODS),
        headers=r.get("cors-allow-headers", _tokens(_HEADER, "HTTP header names", star=True), DEFAULT_CORS_HEADERS),
        credentials=r.get("cors-allow-credentials", _bool, True),
        max_age=r.get("cors-max-age", _int(0, 315_360_000), DEFAULT_CORS_MAX_AGE),
    )


def parse_annotations(raw: Mapping[str, str]) -> tuple[Annotations, list[str]]:
    """The typed annotations and a message per rejected, refused or unsupported annotation."""
    r = _Reader(raw)
    for key in sorted(raw):
        if not key.startswith(PREFIX):
            continue
        name = key.removeprefix(PREFIX)
        if name.endswith("snippet") or name.endswith("snippets"):
            r.problems.append(f"annotation {name} is refused: knet never copies raw configuration into nginx.conf")
        elif name not in KNOWN:
            r.problems.append(f"annotation {name} is not supported by knet; ignored")
    values: dict[str, Any] = {}
    for name, (attr, parse) in _SIMPLE.items():
        found = r.get(name, parse)
        if found is not None:
            values[attr] = found
    values.update(_access(r), affinity=_affinity(r), canary=_canary(r), cors=_cors(r))
    result = replace(Annotations(), **values)
    if result.permanent_redirect and result.temporal_redirect:
        r.problems.append("annotations permanent-redirect and temporal-redirect are both set; "
                          "permanent-redirect wins")
    return result, r.problems
