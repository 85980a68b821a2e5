"""`table inet knet-cni`: masquerade pod traffic that leaves the pod ranges, as kindnet's ip-masq-agent.

Why it is needed: knet's proxy masquerades Service traffic only (marked packets: ClusterIP traffic from
outside the pod ranges, external traffic, hairpins), so without it a pod's packets to anything outside
the cluster (the machine running kind, another network) would leave with the pod's address, to which no
reply finds its way back.

The rule, in nat postrouting: source in the pod ranges and destination outside them -> masquerade (the
node's address on the way out). kindnet masquerades every non-local destination outside the pod subnet,
whatever the source; the source match here leaves the node's own traffic, and traffic routed through the
node from elsewhere, alone. Traffic between pods, on one node or across nodes (routed via the nodes'
InternalIPs, `operators.cni.routes`), keeps the pods' addresses, which NetworkPolicy relies on. Pod
traffic to a node's own address is delivered locally and never reaches postrouting; pod traffic to
another node's address is masqueraded, as kindnet does.

The pod ranges: the cluster's (ClusterNetworkConfig `spec.clusterCIDRs`, kind's defaults otherwise) and
every Node's podCIDRs, merged per family, so a cluster whose pod subnet differs from the configured
clusterCIDRs still never masquerades traffic between pods. Priority 110, after the proxy's masquerading
chain (100): the first nat chain that translates a connection wins, and Service traffic is the proxy's to
translate. `fully-random` source ports, as the proxy's masquerade (and kube-proxy's). Applied as one
`nft -f` transaction that replaces the whole table.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from operators.kube.services import Node

TABLE = "knet-cni"
PRIORITY = 110  # srcnat (100) + 10: after `table inet knet-proxy`'s masquerading
_FAMILY = {4: ("ip", "ipv4_addr"), 6: ("ip6", "ipv6_addr")}


def pod_ranges(cluster_cidrs: Iterable[str], nodes: Iterable[Node]) -> tuple[str, ...]:
    """The cluster's pod ranges and every Node's podCIDRs, merged: IPv4 first, each family sorted."""
    networks = [ipaddress.ip_network(c, strict=False) for c in [*cluster_cidrs, *(c for n in nodes
                                                                                 for c in n.pod_cidrs)]]
    out: list[str] = []
    for version in (4, 6):
        same = [n for n in networks if n.version == version]
        out += [str(n) for n in ipaddress.collapse_addresses(same)]
    return tuple(out)


def render_masquerade(ranges: Iterable[str]) -> str:
    """The nft input that replaces `table inet knet-cni` (`ranges` as `pod_ranges` gives them)."""
    by_family: dict[int, list[str]] = {4: [], 6: []}
    for r in ranges:
        by_family[ipaddress.ip_network(r).version].append(r)
    lines = ["# knet CNI mode: masquerade pod traffic leaving the pod ranges; generated, do not edit.",
             f"add table inet {TABLE}", f"delete table inet {TABLE}", f"table inet {TABLE} {{",
             '\tcomment "knet CNI mode: masquerade pod traffic leaving the pod ranges"']
    rules = []
    for version, members in by_family.items():
        if not members:
            continue
        proto, kind = _FAMILY[version]
        lines += [f"\tset pod-ranges-v{version} {{", f"\t\ttype {kind}", "\t\tflags interval",
                  f"\t\telements = {{ {', '.join(members)} }}", "\t}"]
        rules.append(f"\t\t{proto} saddr @pod-ranges-v{version} {proto} daddr != @pod-ranges-v{version} "
                     "masquerade fully-random")
    lines += ["\tchain postrouting {", f"\t\ttype nat hook postrouting priority {PRIORITY}; policy accept;",
              *rules, "\t}", "}"]
    return "\n".join(lines) + "\n"


def render_cleanup() -> str:
    """The nft input that removes the table (nothing to remove is no error)."""
    return f"add table inet {TABLE}\ndelete table inet {TABLE}\n"
