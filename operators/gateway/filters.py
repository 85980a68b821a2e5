"""HTTPRoute filters and timeouts -> the parts of a `RouteAction`, every value checked before it can reach
nginx.conf. A filter knet does not support, or a value outside what it accepts, refuses the rule (the
route's `Accepted` says why), so nothing half-applied is ever served."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from operators.gateway import hostnames
from operators.gateway.matches import HEADER_NAME, HEADER_VALUE, PLAIN_PATH
from operators.gateway.views import Filter, ObjectRef
from operators.ingress.limits import too_long
from operators.ingress.routing import MIRROR_ALL, Cors, HeaderEdits, Redirect

SUPPORTED = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite", "RequestMirror",
             "CORS")
_ORIGIN = re.compile(r"\*|https?://(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?")
_METHOD = re.compile(r"[A-Z]{1,32}")
_DURATION = re.compile(r"(?:[0-9]{1,5}(?:h|m|s|ms)){1,4}")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


class Refused(ValueError):
    """A filter or value knet does not take; the message goes into the route's condition."""


@dataclass
class Parts:
    request_headers: HeaderEdits = field(default_factory=HeaderEdits)
    response_headers: HeaderEdits = field(default_factory=HeaderEdits)
    redirect: Redirect | None = None
    path: tuple[str, str] | None = None  # (type, value): ReplaceFullPath | ReplacePrefixMatch
    host: str = ""
    mirrors: list[ObjectRef] = field(default_factory=list)
    cors: Cors | None = None


def _pairs(raw: object, what: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in raw if isinstance(raw, tuple) else ():
        entry = dict(item)
        name, value = entry.get("name"), entry.get("value")
        if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
            raise Refused(f"{what}: header name {name!r} is not accepted")
        if not isinstance(value, str) or not HEADER_VALUE.fullmatch(value) or too_long(value):
            raise Refused(f"{what}: the value of header {name} is not accepted (printable, no quotes, "
                          "backslash or $)")
        out.append((name, value))
    return tuple(out)


def _edits(f: Filter) -> HeaderEdits:
    remove = f.get("remove") or ()
    if not all(isinstance(n, str) and HEADER_NAME.fullmatch(n) for n in remove):
        raise Refused(f"{f.type}: a header to remove is not a header name")
    return HeaderEdits(_pairs(f.get("set"), f.type), _pairs(f.get("add"), f.type), tuple(remove))


def _path(raw: object, what: str) -> tuple[str, str] | None:
    if raw is None:
        return None
    entry = dict(raw) if isinstance(raw, tuple) else {}
    kind = entry.get("type")
    value = entry.get("replaceFullPath" if kind == "ReplaceFullPath" else "replacePrefixMatch")
    if kind not in ("ReplaceFullPath", "ReplacePrefixMatch") or not isinstance(value, str) \
            or not PLAIN_PATH.fullmatch(value) or too_long(value):
        raise Refused(f"{what}: path {value!r} is not accepted")
    return kind, value


def parts(filters: tuple[Filter, ...]) -> Parts:
    """The rule's filters, read; Refused for one knet does not take."""
    out = Parts()
    for f in filters:
        if f.type not in SUPPORTED:
            raise Refused(f"filter {f.type} is not supported")
        if f.type == "RequestHeaderModifier":
            out.request_headers = _edits(f)
        elif f.type == "ResponseHeaderModifier":
            out.response_headers = _edits(f)
        elif f.type == "RequestMirror":
            ref = dict(f.get("backendRef") or ())
            if not isinstance(ref.get("name"), str):
                raise Refused("RequestMirror has no backendRef")
            out.mirrors.append(ObjectRef(str(ref.get("group", "")), str(ref.get("kind", "Service")),
                                         str(ref.get("namespace", "")), ref["name"],
                                         ref.get("port") if isinstance(ref.get("port"), int) else None,
                                         weight=mirror_share(f)))
        elif f.type == "CORS":
            out.cors = _cors(f)
        elif f.type == "URLRewrite":
            host = f.get("hostname") or ""
            if host and (not hostnames.valid(host) or host.startswith("*.")):
                raise Refused(f"URLRewrite hostname {host!r} is not a hostname")
            out.host, out.path = host, _path(f.get("path"), "URLRewrite")
        else:
            scheme, host, port, code = (f.get("scheme") or ""), (f.get("hostname") or ""), f.get("port"), \
                f.get("statusCode") or 302
            if scheme not in ("", "http", "https") or (host and (not hostnames.valid(host) or "*" in host)) \
                    or not (port is None or (isinstance(port, int) and 1 <= port <= 65535)) \
                    or code not in (301, 302, 303, 307, 308):
                raise Refused("RequestRedirect: scheme, hostname, port or statusCode is not accepted")
            out.path = _path(f.get("path"), "RequestRedirect")
            out.redirect = Redirect(code, scheme, host, port, out.path is None)
    return out


def _words(f: Filter, key: str, word: re.Pattern[str]) -> tuple[str, ...]:
    values = f.get(key) or ()
    if not isinstance(values, tuple) or not all(isinstance(v, str) and (v == "*" or word.fullmatch(v))
                                                for v in values):
        raise Refused(f"CORS {key} {values!r} is not accepted")
    return ("*",) if "*" in values else values


def _cors(f: Filter) -> Cors:
    """The CORS filter's settings, each value in a narrow grammar; maxAge 5 seconds by default, as the API says."""
    origins = f.get("allowOrigins") or ()
    if not isinstance(origins, tuple) or not all(isinstance(o, str) and _ORIGIN.fullmatch(o) and not too_long(o)
                                                 for o in origins):
        raise Refused(f"CORS allowOrigins {origins!r} is not accepted")
    max_age, credentials = f.get("maxAge"), f.get("allowCredentials")
    if max_age is not None and (not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 0):
        raise Refused(f"CORS maxAge {max_age!r} is not accepted")
    return Cors(("*",) if "*" in origins else origins, credentials is True, _words(f, "allowMethods", _METHOD),
                _words(f, "allowHeaders", HEADER_NAME), _words(f, "exposeHeaders", HEADER_NAME),
                5 if max_age is None else max_age)


def mirror_share(f: Filter) -> int:
    """The share of requests a RequestMirror copies, in hundredths of a percent: `percent`, or `fraction`
    (numerator over denominator, 100 by default), else all."""
    percent, fraction = f.get("percent"), dict(f.get("fraction") or ())
    if percent is not None:
        if not isinstance(percent, int) or isinstance(percent, bool) or not 0 <= percent <= 100:
            raise Refused(f"RequestMirror percent {percent!r} is not 0 to 100")
        return percent * 100
    if fraction:
        numerator, denominator = fraction.get("numerator"), fraction.get("denominator", 100)
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (numerator, denominator)) \
                or not 0 <= numerator <= denominator or denominator <= 0:
            raise Refused(f"RequestMirror fraction {numerator!r}/{denominator!r} is not a fraction of at most 1")
        return numerator * MIRROR_ALL // denominator
    return MIRROR_ALL


def rewrite(path: tuple[str, str] | None, prefix: str) -> tuple[str, str] | None:
    """nginx's `rewrite REGEX REPLACEMENT` for a ReplaceFullPath, or a ReplacePrefixMatch of the match's
    path prefix (path elements: `/foo` becomes R for `/foo`, `/foo/` and `/foo/x`, never `/foobar`)."""
    if path is None:
        return None
    kind, value = path
    if kind == "ReplaceFullPath":
        return "^", value
    head, rest = prefix.rstrip("/"), value.rstrip("/")
    if not head:
        return "^(/.*)$", (rest + "$1") if rest else "$1"
    if not rest:
        return "^" + re.escape(head) + "/?(.*)$", "/$1"
    return "^" + re.escape(head) + "(/.*)?$", rest + "$1"


def timeout_ms(request: str, backend: str) -> int:
    """The rule's timeout in milliseconds (backendRequest, else request); 0: none set, or disabled ("0s")."""
    value = backend or request
    if not value:
        return 0
    if not _DURATION.fullmatch(value):
        raise Refused(f"timeout {value!r} is not a Gateway API duration")
    return sum(int(n) * _UNIT_MS[u] for n, u in re.findall(r"([0-9]+)(h|ms|m|s)", value))
