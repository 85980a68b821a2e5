"""The nginx mechanics of Gateway API servers (`routing.py`): the maps that pick a route rule, the weighted
splits, header edits and redirects of one rule's named location. `render.py` calls these; the quoting rules
are its own (`quote`).

How a request finds its rule, without Lua: one map per condition (`$knet_cond_N` is 1 when a header, query
parameter or method matches its regex, else 0); per server, one map over the concatenated condition flags
and `$uri`, whose regexes (in the spec's precedence order; nginx tries a map's regexes in order) name the
rule's named location; the server's only location hands the request to it with `error_page 418 = $map`.
Named locations keep the request's URI, method and body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from operators.ingress.model import IngressModel, Location, Server
from operators.ingress.routing import MIRROR_ALL, Condition, HeaderEdits, RouteAction

STATUS_500 = "knet_status_500"
STATUS_503 = "knet_status_503"
STANDARD_HEADERS = (("Host", ""), ("X-Request-ID", "$knet_request_id"), ("X-Real-IP", "$remote_addr"),
             ("X-Forwarded-For", "$proxy_add_x_forwarded_for"), ("X-Forwarded-Host", "$host"),
             ("X-Forwarded-Port", "$server_port"), ("X-Forwarded-Proto", "$scheme"), ("X-Scheme", "$scheme"))


class RouteNames:
    """Map, split and variable indexes for one model: deterministic, in the order servers are rendered."""

    def __init__(self, model: IngressModel, usable: set[str]) -> None:
        self.usable = usable
        self.conditions: dict[Condition, int] = {}
        self.servers: dict[int, int] = {}  # server position -> its route map index
        for i, s in enumerate(model.servers):
            if s.gateway:
                self.servers[i] = len(self.servers)
                for m in s.matches:
                    for c in m.conditions:
                        self.conditions.setdefault(c, len(self.conditions))
        self.splits: list[dict[str, Any]] = []
        self.adds: list[dict[str, Any]] = []
        self.status_upstreams = False

    def target(self, upstream: str) -> str:
        """The upstream a share of traffic goes to: its own, or a local server answering 500 (invalid) or 503
        (no endpoints)."""
        if not upstream:
            self.status_upstreams = True
            return STATUS_500
        if upstream not in self.usable:
            self.status_upstreams = True
            return STATUS_503
        return upstream


def route_map(index: int, server: Server, names: RouteNames, quote_regex: Callable[[str], str]) -> dict[str, Any]:
    """The map from a Gateway server's condition flags and path to the named location of its rule."""
    used = sorted({names.conditions[c] for m in server.matches for c in m.conditions})
    position = {n: i for i, n in enumerate(used)}
    entries = []
    for m in server.matches:
        flags = ["."] * len(used)
        for c in m.conditions:
            flags[position[names.conditions[c]]] = "1"
        entries.append((quote_regex("~^" + "".join(flags) + "(?:" + m.path_regex + ")"), "@" + m.target,
                        m.comment))
    return {"index": index, "source": "".join(f"$knet_cond_{n}" for n in used) + "$uri", "entries": entries}


def condition_maps(names: RouteNames, quote_regex: Callable[[str], str]) -> list[dict[str, Any]]:
    return [{"index": i, "variable": c.variable, "regex": quote_regex("~" + c.regex)}
            for c, i in sorted(names.conditions.items(), key=lambda kv: kv[1])]


def mirror_path(upstream: str, share: int) -> str:
    """The internal location that copies a request to `upstream`; with a share below all, a location of that
    share, which lets through only the requests its `split_clients` picked."""
    return f"/.knet-mirror/{upstream}" + (f"/{share}" if share < MIRROR_ALL else "")


def mirror_share_percent(share: int) -> str:
    """split_clients' percentage for a share in hundredths of a percent."""
    return f"{share / 100:g}%"


def _percentages(weights: list[int]) -> list[str]:
    """split_clients shares for the weights: two decimals each, the last one `*` (whatever is left)."""
    total = sum(weights)
    return [f"{int(w * 10000 / total) / 100:g}%" for w in weights[:-1]] + ["*"]


def _headers(action: RouteAction, host: str, names: RouteNames, quote: Callable[..., str]) -> list[tuple[str, str]]:
    """The proxy_set_header lines: the forwarded headers every proxied request gets, with the rule's edits."""
    edits: HeaderEdits = action.request_headers
    headers = {n.lower(): (n, quote(host, variables=True) if n == "Host" else v) for n, v in STANDARD_HEADERS}
    # the port the client reached: the listener's, where nginx's own may be its Gateway's port behind a Service
    headers["x-forwarded-port"] = ("X-Forwarded-Port", str(action.listener_port))
    if action.host:
        headers["host"] = ("Host", quote(action.host))
    for name, value in edits.set:
        headers[name.lower()] = (name, quote(value))
    for name, value in edits.add:
        variable = "$http_" + name.lower().replace("-", "_")
        names.adds.append({"index": len(names.adds), "variable": variable, "value": quote(value),
                           "joined": quote(f"{variable},{value}", variables=True)})
        headers[name.lower()] = (name, f"$knet_add_{len(names.adds) - 1}")
    for name in edits.remove:
        headers[name.lower()] = (name, '""')
    return list(headers.values())


def action_view(loc: Location, server: Server, names: RouteNames, quote: Callable[..., str],
                host: str) -> dict[str, Any]:
    """The parts of a rule's named location that Ingress locations do not have."""
    action = loc.action
    assert action is not None
    view: dict[str, Any] = {"headers": _headers(action, host, names, quote), "response_hide": [],
                            "response_add": [], "mirrors": [], "redirect_to": None}
    edits = action.response_headers
    for name, value in edits.set:
        view["response_hide"].append(name)
        view["response_add"].append((name, quote(value)))
    view["response_add"] += [(name, quote(value)) for name, value in edits.add]
    view["response_hide"] += list(edits.remove)
    if action.redirect is not None:
        r = action.redirect
        tls = bool(server.listens) and server.listens[0].tls
        scheme = r.scheme or ("https" if tls else "http")
        port = r.port if r.port is not None else (None if r.scheme else action.listener_port)
        shown = "" if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f":{port}"
        path = "$request_uri" if r.keep_path else "$uri$is_args$args"
        view["redirect_to"] = (r.code, quote(f"{scheme}://{r.host or '$host'}{shown}{path}", variables=True))
        return view
    if not action.splits:
        view["status"] = 500
        return view
    if len(action.splits) == 1:
        target = names.target(action.splits[0].upstream)
        if target != action.splits[0].upstream:
            view["status"] = 500 if target == STATUS_500 else 503
        view["target"] = f"http://{target}"
    else:
        index = len(names.splits)
        shares = zip(_percentages([s.weight for s in action.splits]),
                     [names.target(s.upstream) for s in action.splits], strict=True)
        names.splits.append({"index": index, "comment": action.route,
                             "shares": [(pct, up) for pct, up in shares if pct != "0%"]})
        view["target"] = f"http://$knet_split_{index}"
    view["mirrors"] = [mirror_path(u, share) for u, share in action.mirrors if u in names.usable]
    if action.timeout_ms:
        view["read"] = view["send"] = f"{action.timeout_ms}ms"
    return view
