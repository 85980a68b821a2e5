"""The `knet-kind` network namespace and its one link to the machine's root namespace.

Containment: podman's bridge, NAT and forwarding live in knet-kind, which has no default route: its only
routes are the node network (podman's bridge) and the /30 link. The root namespace gets that link and a
route for the node network's /24 only, so the machine reaches the API servers; pod and service ranges are
never routed from it.
"""

from __future__ import annotations

import ipaddress

from operators.devcluster import netns
from operators.devcluster.netns import CommandError, ip

from .layout import LINK_NET, NETNS, NETWORK, NODE_NET_V4, NODE_NET_V6, NS_LINK, ROOT_LINK, ns_link_addr, root_link_addr
from .podman import KindError, run


def check_free() -> None:
    """Refuse ranges that the root namespace already routes (someone else's network)."""
    for line in netns.run("ip", "-4", "route", "show").splitlines():
        dst = line.split()[0]
        if dst == "default" or ROOT_LINK in line:
            continue
        net = ipaddress.ip_network(dst, strict=False)
        for ours in (NODE_NET_V4, LINK_NET):
            if net.overlaps(ours):
                raise KindError(f"{ours} overlaps the machine's route `{line.strip()}`")


def create() -> None:
    """The namespace, the link and the route (idempotent), and podman's `kind` network inside."""
    check_free()
    netns.add(NETNS)
    if ROOT_LINK not in ip(None, "-br", "link", "show", check=False):
        ip(None, "link", "add", ROOT_LINK, "type", "veth", "peer", "name", NS_LINK, "netns", NETNS)
        ip(None, "addr", "add", f"{root_link_addr()}/{LINK_NET.prefixlen}", "dev", ROOT_LINK)
        ip(NETNS, "addr", "add", f"{ns_link_addr()}/{LINK_NET.prefixlen}", "dev", NS_LINK)
    ip(None, "link", "set", ROOT_LINK, "up")
    ip(NETNS, "link", "set", NS_LINK, "up")
    ip(None, "route", "replace", str(NODE_NET_V4), "via", ns_link_addr(), "dev", ROOT_LINK)
    if not _exists():
        run(["podman", "network", "create", "-d=bridge", "--ipv6",
             "--subnet", str(NODE_NET_V4), "--subnet", str(NODE_NET_V6), NETWORK])


def _exists() -> bool:
    try:
        run(["podman", "network", "exists", NETWORK])
        return True
    except KindError:
        return False


def destroy() -> None:
    """podman's `kind` network, the link and the namespace (the link's route goes with it)."""
    if netns.exists(NETNS):
        if _exists():
            run(["podman", "network", "rm", "-f", NETWORK], check=False)
        netns.kill_all(NETNS)
        ip(None, "link", "del", ROOT_LINK, check=False)
        try:
            netns.run("ip", "netns", "del", NETNS)
        except CommandError as e:
            raise KindError(str(e)) from None
    else:
        ip(None, "link", "del", ROOT_LINK, check=False)
