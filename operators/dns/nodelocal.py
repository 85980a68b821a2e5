"""Node-local mode (`knet dns --node-local ADDR`): a cache on a link-local address of each node.

As NodeLocal DNSCache does, the server runs in the node's network namespace on an address no pod
or node owns (169.254.20.10 by convention), so pods that use it as their nameserver reach it without
crossing the Service proxy. The address is a host address on the loopback interface (NodeLocal
DNSCache uses a dummy interface; kernels without the dummy module, like this project's test
machines, have none, and `lo` delivers locally just the same). It answers the cluster zones
from its own watch of the API (the same store as the cluster DNS) and forwards every other name to
the cluster DNS (`--forward-to`, normally the kube-dns Service IP), which applies the DNSConfig's
upstreams and stub domains; the node-local forwarder caches those answers.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Sequence
from dataclasses import replace

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from operators.dns.config import DNSConfig, Server

LINK = "lo"


def ensure_address(address: str, ifname: str = LINK) -> None:
    """Hold `address` (a host address: /32 or /128) on `ifname` of this namespace, unless it is there."""
    ip = ipaddress.ip_address(address)
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        try:
            ipr.addr("add", index=index, address=str(ip), prefixlen=ip.max_prefixlen)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise


def forwarding_to(config: DNSConfig, servers: Sequence[Server]) -> DNSConfig:
    """The config a node-local cache uses: names outside the cluster zones go to the cluster DNS only."""
    return replace(config, upstream=replace(config.upstream, servers=tuple(servers)), stub_domains=())
