"""Everything one node needs for pod networking in CNI mode, decided at once from the Nodes' views.

The agent's CNI loop builds a `Plan` on every sync and applies it (`operators.agent.cni`); `knet render
cni` prints one. Problems name the Node at fault: this node without podCIDRs (nothing can be written, so
the runtime keeps the node NotReady, as without kindnet), peers that cannot be routed to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from operators.cni.conflist import render_conflist
from operators.cni.masquerade import pod_ranges, render_masquerade
from operators.cni.routes import Route, peer_problems, peer_routes
from operators.kube.services import Node, Problem


@dataclass(frozen=True)
class Plan:
    conflist: str | None  # None until this node has podCIDRs: no file is written then
    routes: frozenset[Route]
    masquerade: str  # nft input replacing `table inet knet-cni`
    problems: tuple[Problem, ...]


def plan(node: str, nodes: Iterable[Node], cluster_cidrs: Iterable[str], mtu: int | None = None) -> Plan:
    """The plan of node `node` among `nodes` (every Node's view, this node's included)."""
    nodes = tuple(nodes)
    own = next((n for n in nodes if n.name == node), None)
    problems: list[Problem] = []
    if own is None:
        problems.append(Problem("Node", "", node, "is not among the Nodes seen: no CNI configuration yet"))
    elif not own.pod_cidrs:
        problems.append(Problem("Node", "", node, "has no podCIDRs yet: no CNI configuration is written, so no pod "
                                                  "can start on it (kube-controller-manager allocates them with "
                                                  "--allocate-node-cidrs)"))
    conflist = render_conflist(own.pod_cidrs, mtu) if own is not None and own.pod_cidrs else None
    return Plan(conflist, peer_routes(node, nodes), render_masquerade(pod_ranges(cluster_cidrs, nodes)),
                (*problems, *peer_problems(node, nodes)))
