"""Routes to the other nodes' pods (operators/cni/routes.py): podCIDR via the peer's InternalIP."""

from __future__ import annotations

from operators.cni.routes import Route, peer_problems, peer_routes
from operators.kube.services import Node


def node(name: str, ips: tuple[str, ...], cidrs: tuple[str, ...]) -> Node:
    return Node(name, ips, (), cidrs)


A = node("a", ("172.18.0.2",), ("10.244.0.0/24",))
B = node("b", ("172.18.0.3", "fc00::3"), ("10.244.1.0/24", "fd00:10:244:1::/64"))


def test_every_peer_podcidr_via_its_internal_ip_of_the_same_family() -> None:
    assert peer_routes("a", [A, B]) == {Route("10.244.1.0/24", "172.18.0.3"), Route("fd00:10:244:1::/64", "fc00::3")}


def test_no_route_to_the_nodes_own_pods() -> None:
    assert peer_routes("b", [A, B]) == {Route("10.244.0.0/24", "172.18.0.2")}


def test_a_peer_without_podcidrs_is_skipped_with_a_problem() -> None:
    assert peer_routes("a", [A, node("c", ("172.18.0.4",), ())]) == frozenset()
    (problem,) = peer_problems("a", [A, node("c", ("172.18.0.4",), ())])
    assert (problem.kind, problem.name) == ("Node", "c") and "no podCIDRs" in problem.message


def test_a_family_without_an_address_is_skipped_alone() -> None:
    half = node("c", ("172.18.0.4",), ("10.244.3.0/24", "fd00:10:244:3::/64"))
    assert peer_routes("a", [A, half]) == {Route("10.244.3.0/24", "172.18.0.4")}
    assert [p.message for p in peer_problems("a", [A, half])] == [
        "has no IPv6 InternalIP: no route to its podCIDR fd00:10:244:3::/64"]


def test_a_podcidr_overlapping_our_own_is_not_routed() -> None:
    assert peer_routes("a", [A, node("c", ("172.18.0.4",), ("10.244.0.0/16",))]) == frozenset()


def test_a_podcidr_claimed_twice_goes_to_the_first_node_by_name() -> None:
    twins = [node("z", ("172.18.0.9",), ("10.244.5.0/24",)), node("y", ("172.18.0.8",), ("10.244.5.0/24",))]
    assert peer_routes("a", [A, *twins]) == {Route("10.244.5.0/24", "172.18.0.8")}
    assert [p.name for p in peer_problems("a", [A, *twins])] == ["z"]


def test_routes_work_before_our_own_node_is_seen() -> None:
    assert peer_routes("a", [B]) == {Route("10.244.1.0/24", "172.18.0.3"), Route("fd00:10:244:1::/64", "fc00::3")}
