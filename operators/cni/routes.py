"""Routes to the other nodes' pods: each peer's podCIDR via the peer's InternalIP of the same family.

kindnet's routing, decided as a pure function: the underlay is one link (kind's container network), so a
node reaches another node's pods by sending to that node, which delivers them over the pods' veths. A
route needs an address of the podCIDR's family on the peer; a peer without podCIDRs (not allocated yet)
or without such an address gets no route, and a problem that says why (an Event on that Node), never an
exception: the other nodes' routes do not wait for it.

Conflicts are decided, not left to the kernel: a peer podCIDR overlapping this node's own is not routed
(it would take this node's pods' addresses away from their veths), and a podCIDR claimed by two peers is
routed to the one whose name sorts first.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from operators.kube.services import Node, Problem, family_of

# The rtnetlink protocol number knet's routes carry (`ip route show proto 75`): the agent removes only routes
# with it, so routes made by anyone else are never touched. Unassigned in iproute2's rt_protos (kernel 0-4,
# routing daemons 8-18, 42, 99, 186-192), and not Calico's 80.
PROTO = 75


@dataclass(frozen=True, order=True)
class Route:
    """`ip route replace DST via VIA` (main table); addresses in their normalised text."""

    dst: str
    via: str

    @property
    def family(self) -> int:
        return family_of(self.dst)

    def __str__(self) -> str:
        return f"{self.dst} via {self.via}"


def _node_problem(node: Node, message: str) -> Problem:
    return Problem("Node", "", node.name, message)


def _plan(own_node: str, nodes: Iterable[Node]) -> tuple[frozenset[Route], tuple[Problem, ...]]:
    by_name = {n.name: n for n in nodes}
    own = by_name.get(own_node)
    own_cidrs = [ipaddress.ip_network(c) for c in own.pod_cidrs] if own else []
    own_ips = set(own.internal_ips) if own else set()
    routes: dict[str, Route] = {}
    owners: dict[str, str] = {}
    problems: list[Problem] = []
    for name in sorted(by_name):
        node = by_name[name]
        if name == own_node:
            continue
        if not node.pod_cidrs:
            problems.append(_node_problem(node, "has no podCIDRs yet: no route to its pods (kube-controller-manager "
                                                "allocates them with --allocate-node-cidrs)"))
            continue
        for cidr in node.pod_cidrs:
            family = family_of(cidr)
            via = next((ip for ip in node.internal_ips if family_of(ip) == family), None)
            network = ipaddress.ip_network(cidr)
            if via is None:
                problems.append(_node_problem(node, f"has no IPv{family} InternalIP: no route to its podCIDR {cidr}"))
            elif via in own_ips:
                problems.append(_node_problem(node, f"has this node's InternalIP {via}: no route to its podCIDR "
                                                    f"{cidr}"))
            elif any(network.overlaps(mine) for mine in own_cidrs):
                problems.append(_node_problem(node, f"podCIDR {cidr} overlaps this node's podCIDRs "
                                                    f"{', '.join(own.pod_cidrs if own else ())}: not routed"))
            elif cidr in routes:
                problems.append(_node_problem(node, f"podCIDR {cidr} is also Node {owners[cidr]}'s: routed to "
                                                    f"{owners[cidr]} only"))
            else:
                routes[cidr], owners[cidr] = Route(cidr, via), name
    return frozenset(routes.values()), tuple(problems)


def peer_routes(own_node: str, nodes: Iterable[Node]) -> frozenset[Route]:
    """The routes node `own_node` needs to every other node's pods."""
    return _plan(own_node, nodes)[0]


def peer_problems(own_node: str, nodes: Iterable[Node]) -> tuple[Problem, ...]:
    """Why some peer podCIDRs get no route from `own_node` (one problem per Node and cause, by name)."""
    return _plan(own_node, nodes)[1]
