"""The parts of the routing model that the Gateway API adds to what Ingresses need.

An Ingress server picks a location by path alone, which nginx's own location matching does. An HTTPRoute
also matches on headers, query parameters and method, with the spec's precedence across every route on a
host. So a Gateway server has one dispatching location: an ordered list of `RouteMatch`es, each naming the
named location (`@name`) of one route rule, rendered as one nginx `map` whose regexes nginx tries in order,
first match wins. The rule's location carries a `RouteAction`: its filters and weighted backends.

Every string here was validated by the model that built it (`operators.gateway`): header and query names
are tokens nginx can name as variables, regexes are within knet's regex grammar, header values and
hostnames contain nothing nginx would read specially. The renderer still quotes all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

MIRROR_ALL = 10000  # a RequestMirror's share of requests is in hundredths of a percent (split_clients' precision)


@dataclass(frozen=True)
class Listen:
    """One port a server listens on, and whether it terminates TLS there."""

    port: int
    tls: bool


@dataclass(frozen=True)
class Condition:
    """A request condition besides the path: `source` header | query | method; `regex` is an nginx regex
    (PCRE) the variable must match, e.g. `^GET$`."""

    source: str
    name: str  # header: lower case with `_` for `-` (as nginx's $http_ names it); query: the name; method: ""
    regex: str

    @property
    def variable(self) -> str:
        return {"header": "$http_", "query": "$arg_", "method": "$request_method"}[self.source] + self.name


@dataclass(frozen=True)
class RouteMatch:
    """One HTTPRoute match: a path regex (matched from the path's start), conditions, and the rule it selects."""

    path_regex: str
    conditions: tuple[Condition, ...]
    target: str  # the name of the rule's named location
    comment: str


@dataclass(frozen=True)
class HeaderEdits:
    set: tuple[tuple[str, str], ...] = ()  # (canonical name, value)
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class Redirect:
    code: int
    scheme: str  # "" keeps the request's
    host: str  # "" keeps the request's
    port: int | None  # None: the scheme's well-known port (or the listener's when the scheme is kept)
    keep_path: bool  # True: the request's path and query; else `rewrite` below sets $uri first


@dataclass(frozen=True)
class Split:
    """One weighted backend: `upstream` names an upstream, or is "" for a share that answers 500."""

    upstream: str
    weight: int


@dataclass(frozen=True)
class Cors:
    """An HTTPRoute rule's CORS filter: the allowed origins ("*", or `scheme://host[:port]` whose host may start
    with `*.` for any number of labels), and what a preflight answers; `("*",)` methods or headers echo the
    ones requested."""

    origins: tuple[str, ...]
    credentials: bool
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]
    max_age: int


@dataclass(frozen=True)
class RouteAction:
    """What one HTTPRoute rule does with a request its matches selected."""

    route: str  # namespace/name, for comments
    splits: tuple[Split, ...]  # the backends with a weight above 0; empty: 500 (unless a redirect)
    request_headers: HeaderEdits = HeaderEdits()
    response_headers: HeaderEdits = HeaderEdits()
    redirect: Redirect | None = None
    rewrite: tuple[str, str] | None = None  # (regex, replacement) for nginx's rewrite: a new path
    host: str = ""  # URLRewrite's hostname: the Host sent upstream
    mirrors: tuple[tuple[str, int], ...] = ()  # (upstream name, share of requests in hundredths of a percent)
    timeout_ms: int = 0  # 0: the controller's timeouts
    listener_port: int = 80
    cors: Cors | None = None
