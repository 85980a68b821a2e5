"""HTTPRoute matches -> `RouteMatch`es, and the spec's precedence among them.

Validation: a path is within the Ingress model's grammar for plain paths (Exact, PathPrefix) or regexes
(RegularExpression); a header name is an HTTP token of letters, digits and `-` (nginx names it
`$http_x_y`; it drops headers with `_` by default); a query name is letters, digits and `_` (nginx's
`$arg_` variable); a value is printable ASCII without quotes, backslash or `$`; a method is one the API
allows. A match outside these is refused with the rule (`UnsupportedValue`), never rendered.

Precedence (HTTPRouteRule's doc), highest first: an Exact path; the longest PathPrefix (a RegularExpression
path, whose place the spec leaves to implementations, ranks with the prefixes by its length, after a prefix
as long, so `/` stays the last resort); a method; the most header matches; the most query matches; the
oldest route; the route first by namespace/name; the rule and match first in the route. Hostname specificity
comes before all of these (`hostnames.specificity`).
"""

from __future__ import annotations

import re

from operators.gateway.views import Match
from operators.ingress.limits import too_long
from operators.ingress.model import regex_ok
from operators.ingress.routing import Condition

PLAIN_PATH = re.compile(r"/[A-Za-z0-9/._~%!*+,=:@&()-]*")
_REGEX = re.compile(r"(?:[A-Za-z0-9/._~%!*+,=:@&()|?^$\[\]{}<> -]|\\[dDwWsSbB./()\[\]{}|?*+^$-])*")
HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,256}")
_QUERY = re.compile(r"[A-Za-z0-9_]{1,256}")
HEADER_VALUE = re.compile(r"[ !#%&()*+,./0-9:;<=>?@A-Z\[\]^_`a-z{|}~-]{0,4096}")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


def path_regex(m: Match) -> str | None:
    """The regex for the path (matched from its start), or None when knet cannot match it safely."""
    if too_long(m.path):
        return None
    if m.path_type == "RegularExpression":
        body = m.path.removeprefix("^")
        return body if body.startswith("/") and regex_ok(body, _REGEX) else None
    if not PLAIN_PATH.fullmatch(m.path):
        return None
    if m.path_type == "Exact":
        return re.escape(m.path) + "$"
    if m.path_type == "PathPrefix":
        prefix = m.path.rstrip("/")
        return "/" if not prefix else re.escape(prefix) + "(/|$)"
    return None


def conditions(m: Match) -> tuple[Condition, ...] | None:
    """The match's header, query and method conditions, or None when one of them is not safe."""
    out = []
    for source, pairs, names in (("header", m.headers, HEADER_NAME), ("query", m.queries, _QUERY)):
        for kind, name, value in pairs:
            if not names.fullmatch(name) or too_long(value):
                return None
            if kind == "Exact" and HEADER_VALUE.fullmatch(value):
                regex = "^" + re.escape(value) + "$"
            elif kind == "RegularExpression" and regex_ok(value, _REGEX):
                regex = value
            else:
                return None
            key = name.lower().replace("-", "_") if source == "header" else name
            out.append(Condition(source, key, regex))
    if m.method:
        if m.method not in METHODS:
            return None
        out.append(Condition("method", "", f"^{m.method}$"))
    return tuple(out)


def precedence(m: Match) -> tuple[int, int, int, int, int, int]:
    """Sort key, smallest first, for the matches of one hostname (see the module docstring)."""
    length = len(m.path.rstrip("/")) if m.path_type == "PathPrefix" else len(m.path)
    return (0 if m.path_type == "Exact" else 1, -length, 0 if m.path_type == "PathPrefix" else 1,
            0 if m.method else 1, -len(m.headers), -len(m.queries))
