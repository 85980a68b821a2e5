"""`knet render cni -f nodes.yaml --node NODE`: the CNI plan of one node, from Node objects in YAML files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from operators.cni.conflist import DEFAULT_PATH
from operators.cni.plan import Plan, plan
from operators.cni.routes import PROTO, Route
from operators.kube.services import Node, parse_node

DEFAULT_CLUSTER_CIDRS = ("10.244.0.0/16", "fd00:10:244::/56")  # ClusterNetworkConfig's (and kind's) defaults


def nodes_of(objects: Iterable[Mapping[str, Any]]) -> tuple[tuple[Node, ...], list[str]]:
    """The usable Node views among `objects`, and the problems met parsing them."""
    nodes, problems = [], []
    for obj in objects:
        if obj.get("kind") != "Node":
            continue
        view, found = parse_node(obj)
        problems += [str(p) for p in found]
        if view is not None:
            nodes.append(view)
    return tuple(nodes), problems


def cluster_cidrs_of(objects: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """`spec.clusterCIDRs` of a ClusterNetworkConfig among `objects`, else the defaults."""
    for obj in objects:
        cidrs = (obj.get("spec") or {}).get("clusterCIDRs") if obj.get("kind") == "ClusterNetworkConfig" else None
        if isinstance(cidrs, list) and all(isinstance(c, str) for c in cidrs):
            return tuple(cidrs)
    return DEFAULT_CLUSTER_CIDRS


def plan_of(objects: list[dict[str, Any]], node: str, mtu: int | None = None) -> tuple[Plan, list[str]]:
    nodes, problems = nodes_of(objects)
    result = plan(node, nodes, cluster_cidrs_of(objects), mtu)
    return result, problems + [str(p) for p in result.problems]


def format_routes(routes: Iterable[Route]) -> str:
    return "".join(f"{r}\n" for r in sorted(routes))


def render(objects: list[dict[str, Any]], node: str, mtu: int | None = None) -> tuple[str, list[str]]:
    """(text, problems): the conflist, the routes and the masquerade table, each under a comment line."""
    result, problems = plan_of(objects, node, mtu)
    conflist = result.conflist or "(none: the node has no podCIDRs)\n"
    text = (f"# CNI configuration list ({DEFAULT_PATH})\n{conflist}"
            f"# routes to the other nodes' pods (proto {PROTO})\n{format_routes(result.routes)}"
            f"# nft -f\n{result.masquerade}")
    return text, problems
