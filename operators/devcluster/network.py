"""The devcluster's network: an underlay bridge in a namespace of its own (as kind's Docker
network), one namespace per node and one for the external client attached to it, and a
link from the root namespace that carries the underlay range and nothing else.

Containment: the underlay namespace has no default route and forwards nothing; nodes route
only the underlay and their peers' pod ranges; the root namespace gets a route for this
cluster's underlay /24 only (never pod, service or default routes).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from . import netns
from .layout import PREFIX, Layout
from .netns import CommandError, ip


def _prefix(addr: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return f"{addr}/{net.prefixlen}"


def _attach(layout: Layout, ns: str | None, link: str, ips: list[str]) -> None:
    """A veth from the underlay bridge to `ns` (None: the root namespace), named `link` there."""
    peer = "u" + hashlib.sha1((ns or "root").encode()).hexdigest()[:10]
    ip(layout.underlay_ns, "link", "del", peer, check=False)
    ip(layout.underlay_ns, "link", "add", peer, "type", "veth", "peer", "name", link, "netns", ns or "1")
    ip(layout.underlay_ns, "link", "set", peer, "master", "br0", "up")
    for a in ips:
        net = layout.underlay_v6 if ":" in a else layout.underlay_v4
        ip(ns, "addr", "add", _prefix(a, net), "dev", link, *(["nodad"] if ":" in a else []))
    ip(ns, "link", "set", link, "up")


def check_free(layout: Layout) -> None:
    """Refuse an underlay range that the root namespace already routes (someone else's network)."""
    routes = netns.run("ip", "-4", "route", "show")
    for line in routes.splitlines():
        dst = line.split()[0]
        if dst == "default" or layout.root_link in line:
            continue
        net = ipaddress.ip_network(dst, strict=False)
        if net.overlaps(layout.underlay_v4):
            raise CommandError(f"underlay {layout.underlay_v4} overlaps the existing route `{line.strip()}`")


def create(layout: Layout) -> None:
    """Create (or complete) the underlay, the node and external-client namespaces, and the root link."""
    check_free(layout)
    netns.add(layout.underlay_ns)
    if "br0" not in ip(layout.underlay_ns, "-br", "link", "show", check=False):
        ip(layout.underlay_ns, "link", "add", "br0", "type", "bridge")
    ip(layout.underlay_ns, "link", "set", "br0", "up")
    netns.sysctl(layout.underlay_ns, net__ipv4__ip_forward="0")
    for i, node in enumerate(layout.node_names):
        ns = layout.node_ns(node)
        if netns.exists(ns):
            continue
        netns.add(ns)
        _attach(layout, ns, "eth0", layout.node_ips(i))
        netns.sysctl(
            ns,
            net__ipv4__ip_forward="1",
            net__ipv4__conf__all__rp_filter="0",
            net__ipv4__conf__default__rp_filter="0",
            net__ipv6__conf__all__forwarding="1",
        )
    if not netns.exists(layout.external_ns):
        netns.add(layout.external_ns)
        _attach(layout, layout.external_ns, "eth0", layout.external_ips)
    if layout.root_link not in netns.run("ip", "-br", "link", "show"):
        _attach(layout, None, layout.root_link, layout.root_ips)


def route_pod_cidrs(layout: Layout, node: str, peers: dict[str, tuple[list[str], list[str]]]) -> None:
    """In `node`'s namespace, route each peer's pod CIDRs via that peer's node address (as kindnet)."""
    ns = layout.node_ns(node)
    for peer, (cidrs, addrs) in sorted(peers.items()):
        if peer == node:
            continue
        for cidr in cidrs:
            fam = 6 if ":" in cidr else 4
            via = next((a for a in addrs if (":" in a) == (fam == 6)), None)
            if via:
                ip(ns, f"-{fam}", "route", "replace", cidr, "via", via, "dev", "eth0")


def destroy(name: str) -> None:
    """Remove every namespace of cluster `name` (their processes first); the veths, the root
    link and the routes over them go with the namespaces."""
    prefix = f"{PREFIX}-{name}-"
    names = netns.listing(prefix)
    # pods first, then nodes and the external client, the underlay last
    names.sort(key=lambda n: (n == f"{prefix}net", "-pod-" not in n))
    for ns in names:
        netns.delete(ns)
    # the root end of the underlay link goes with its peer, but the kernel does that lazily
    for line in ip(None, "-o", "link", "show").splitlines():
        link = line.split(":")[1].strip().split("@")[0]
        if re.fullmatch(r"kn\d+-.*", link) and any(f"kn{i}-{name}"[:15] == link for i in range(256)):
            ip(None, "link", "del", link, check=False)
