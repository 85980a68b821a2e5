"""CNI mode's routes to the other nodes' pods, in the kernel's main table, over netlink (pyroute2).

knet's routes carry their own protocol number (`operators.cni.routes.PROTO`, `ip route show proto 75`):
what carries it is knet's, so a reconcile removes only knet's stale routes and an uninstall only knet's
routes, whatever else is in the table. A route to a peer's podCIDR replaces whatever route the table had
for that destination (as kindnet, which deletes routes to a podCIDR through any other gateway): in CNI
mode the podCIDRs are knet's to route. Blocking calls: the agent runs them in a thread.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from operators.cni.routes import PROTO, Route

MAIN_TABLE = 254
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one reconcile changed, and what it could not do (one message each)."""

    added: tuple[Route, ...] = ()
    removed: tuple[Route, ...] = ()
    errors: tuple[str, ...] = ()
    unrouted: int = 0  # wanted routes that could not be made


def _route_of(msg: Any) -> Route | None:
    dst, via = msg.get_attr("RTA_DST"), msg.get_attr("RTA_GATEWAY")
    if dst is None or via is None:
        return None
    return Route(str(ipaddress.ip_network(f"{dst}/{msg['dst_len']}")), str(ipaddress.ip_address(via)))


def _ours(ipr: IPRoute) -> list[Any]:
    """The route messages of the main table that carry knet's protocol number, both families."""
    found = []
    for family in FAMILIES.values():
        for msg in ipr.get_routes(family=family, table=MAIN_TABLE, proto=PROTO):
            table = msg.get_attr("RTA_TABLE") or msg["table"]
            if msg["proto"] == PROTO and table == MAIN_TABLE:
                found.append(msg)
    return found


def installed() -> frozenset[Route]:
    """knet's routes now in the main table."""
    with IPRoute() as ipr:
        return frozenset(r for msg in _ours(ipr) if (r := _route_of(msg)) is not None)


def _change(ipr: IPRoute, command: str, route: Route) -> str:
    """`ip route COMMAND` of one route; the error, or ""."""
    try:
        ipr.route(command, dst=route.dst, gateway=route.via, table=MAIN_TABLE, proto=PROTO,
                  family=FAMILIES[route.family])
    except NetlinkError as e:
        return f"ip route {command} {route} proto {PROTO}: {e.args[1] if len(e.args) > 1 else e}"
    return ""


def reconcile(wanted: Iterable[Route]) -> Outcome:
    """Make knet's routes exactly `wanted`: missing ones first (a changed gateway is replaced in place, with no
    moment without a route), then stale ones removed, except where a route to the same destination could not
    be replaced (the old gateway stays better than none until the next try)."""
    wanted = frozenset(wanted)
    added, removed, errors = [], [], []
    with IPRoute() as ipr:
        current = frozenset(r for msg in _ours(ipr) if (r := _route_of(msg)) is not None)
        failed: set[str] = set()
        for route in sorted(wanted - current):
            if err := _change(ipr, "replace", route):
                errors.append(err)
                failed.add(route.dst)
            else:
                added.append(route)
        replaced = {r.dst for r in added}
        for route in sorted(current - wanted):
            if route.dst in failed:
                continue
            if route.dst in replaced:  # `replace` already took its place
                removed.append(route)
            elif err := _change(ipr, "del", route):
                errors.append(err)
            else:
                removed.append(route)
    return Outcome(tuple(added), tuple(removed), tuple(errors), len(failed))


def remove_all() -> list[str]:
    """Delete every route of knet's in the main table (uninstall); the errors, if any."""
    errors = []
    with IPRoute() as ipr:
        for msg in _ours(ipr):
            try:
                ipr.route("del", **_del_args(msg))
            except NetlinkError as e:
                if e.code != 3:  # ESRCH: gone already
                    errors.append(f"deleting a route of proto {PROTO}: {e}")
    return errors


def _del_args(msg: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"family": msg["family"], "dst_len": msg["dst_len"], "table": MAIN_TABLE,
                            "proto": PROTO, "scope": msg["scope"]}
    for attr, key in (("RTA_DST", "dst"), ("RTA_GATEWAY", "gateway"), ("RTA_OIF", "oif"),
                      ("RTA_PRIORITY", "priority")):
        if (value := msg.get_attr(attr)) is not None:
            args[key] = value
    return args


def link_mtu(addresses: Iterable[str]) -> int | None:
    """The MTU of the link that holds one of `addresses` (the node's InternalIPs), as kindnet takes eth0's;
    None when no link holds any of them."""
    wanted = {str(ipaddress.ip_address(a)) for a in addresses}
    with IPRoute() as ipr:
        for addr in ipr.get_addr():
            local = addr.get_attr("IFA_LOCAL") or addr.get_attr("IFA_ADDRESS")
            if local is not None and str(ipaddress.ip_address(local)) in wanted:
                links = ipr.get_links(addr["index"])
                mtu = links[0].get_attr("IFLA_MTU") if links else None
                return int(mtu) if mtu else None
    return None
