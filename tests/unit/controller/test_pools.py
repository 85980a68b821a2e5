"""LoadBalancerIPPool allocation: validation, overlap, selectors, requests, restarts, and (hypothesis) that
no address is ever held by two Services whatever the pools, Services and their current status are."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.controller.pools import (
    LB_CLASS,
    POOL_ANNOTATION,
    Allocation,
    allocate,
    parse_lb_service,
    valid_pools,
)


def pool(name: str, *ranges: dict[str, str], created: str = "2026-01-01T00:00:00Z", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"ranges": list(ranges), **spec}}


def service(name: str, ns: str = "default", created: str = "2026-01-01T00:00:01Z",
            families: tuple[str, ...] = ("IPv4",), current: tuple[str, ...] = (),
            type_: str = "LoadBalancer", labels: dict[str, str] | None = None,
            annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "creationTimestamp": created, "labels": labels or {},
                         "annotations": annotations or {}},
            "spec": {"type": type_, "ipFamilies": list(families), **spec},
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in current]}}}


def run(pools: list[dict[str, Any]], services: list[dict[str, Any]],
        namespaces: dict[str, dict[str, str]] | None = None) -> Allocation:
    valid, problems = valid_pools(pools)
    return allocate(valid, problems, [parse_lb_service(s) for s in services], namespaces or {})


def test_lowest_free_addresses_in_creation_order() -> None:
    result = run([pool("p", {"cidr": "172.30.1.128/30"})],
                 [service("b", created="2026-01-01T00:00:02Z"), service("a")])
    assert result.addresses == {"default/a": ("172.30.1.128",), "default/b": ("172.30.1.129",)}
    assert result.usage["p"].allocated == 2 and result.usage["p"].available == 2


def test_exhausted_pool_leaves_the_newest_service_without_address() -> None:
    result = run([pool("p", {"start": "172.30.1.10", "end": "172.30.1.11"})],
                 [service(n, created=f"2026-01-01T00:00:0{i}Z") for i, n in enumerate("abc")])
    assert result.addresses["default/c"] == ()
    assert "exhausted" in result.unserved["default/c"][0]
    assert result.usage["p"].available == 0


def test_current_status_is_kept_across_restarts() -> None:
    services = [service("a", current=("172.30.1.131",)), service("b", created="2026-01-01T00:00:02Z")]
    result = run([pool("p", {"cidr": "172.30.1.128/30"})], services)
    assert result.addresses == {"default/a": ("172.30.1.131",), "default/b": ("172.30.1.128",)}


def test_duplicate_claim_goes_to_the_older_service() -> None:
    services = [service("new", created="2026-01-01T00:00:05Z", current=("172.30.1.128",)),
                service("old", current=("172.30.1.128",))]
    result = run([pool("p", {"cidr": "172.30.1.128/30"})], services)
    assert result.addresses == {"default/old": ("172.30.1.128",), "default/new": ("172.30.1.129",)}


def test_dual_stack_gets_one_address_per_family_in_family_order() -> None:
    result = run([pool("p", {"cidr": "172.30.1.128/30"}, {"cidr": "fd00:172:30:1::1:0/126"})],
                 [service("a", families=("IPv6", "IPv4"))])
    assert result.addresses["default/a"] == ("fd00:172:30:1::1:0", "172.30.1.128")


def test_single_stack_v6_without_v6_pool_is_unserved() -> None:
    result = run([pool("p", {"cidr": "172.30.1.128/30"})], [service("a", families=("IPv6",))])
    assert result.addresses["default/a"] == ()
    assert "IPv6" in result.unserved["default/a"][0]


def test_requested_load_balancer_ip() -> None:
    p = pool("p", {"cidr": "172.30.1.128/29"})
    result = run([p], [service("a", loadBalancerIP="172.30.1.133"), service("b", loadBalancerIP="172.30.1.133",
                                                                           created="2026-01-01T00:00:03Z"),
                       service("c", loadBalancerIP="10.1.2.3")])
    assert result.addresses["default/a"] == ("172.30.1.133",)
    assert result.addresses["default/b"] == () and "already in use" in result.unserved["default/b"][0]
    assert result.addresses["default/c"] == () and "not in a pool" in result.unserved["default/c"][0]


def test_changed_request_moves_the_address() -> None:
    result = run([pool("p", {"cidr": "172.30.1.128/29"})],
                 [service("a", current=("172.30.1.128",), loadBalancerIP="172.30.1.130")])
    assert result.addresses["default/a"] == ("172.30.1.130",)


def test_other_classes_and_types_get_nothing_and_free_their_addresses() -> None:
    services = [service("other", loadBalancerClass="example.com/lb", current=("172.30.1.128",)),
                service("cip", type_="ClusterIP", current=("172.30.1.129",)),
                service("ours", loadBalancerClass=LB_CLASS)]
    result = run([pool("p", {"cidr": "172.30.1.128/30"})], services)
    assert result.addresses == {"default/ours": ("172.30.1.128",), "default/cip": ()}


def test_selectors_and_named_pool() -> None:
    pools = [pool("web", {"cidr": "172.30.1.128/30"}, serviceSelector={"matchLabels": {"tier": "web"}}),
             pool("prod", {"cidr": "172.30.1.132/30"}, created="2026-01-01T00:00:01Z",
                  namespaceSelector={"matchLabels": {"env": "prod"}})]
    services = [service("w", labels={"tier": "web"}), service("p", ns="shop"), service("x", ns="dev"),
                service("named", ns="shop", labels={"tier": "web"}, annotations={POOL_ANNOTATION: "prod"},
                        created="2026-01-01T00:00:09Z")]
    result = run(pools, services, {"shop": {"env": "prod"}, "dev": {}})
    assert result.addresses["default/w"] == ("172.30.1.128",)
    assert result.addresses["shop/p"] == ("172.30.1.132",)
    assert result.addresses["shop/named"] == ("172.30.1.133",)
    assert result.addresses["dev/x"] == ()


def test_avoid_buggy_ips() -> None:
    p = pool("p", {"start": "172.30.1.255", "end": "172.30.2.1"}, avoidBuggyIPs=True)
    result = run([p], [service("a"), service("b", created="2026-01-01T00:00:02Z")])
    assert result.addresses == {"default/a": ("172.30.2.1",), "default/b": ()}
    assert result.usage["p"].allocated == 1 and result.usage["p"].available == 0


def test_invalid_and_overlapping_pools_are_reported_and_the_rest_works() -> None:
    pools = [pool("good", {"cidr": "172.30.1.128/30"}),
             pool("late", {"cidr": "172.30.1.130/31"}, created="2026-01-02T00:00:00Z"),
             pool("self", {"cidr": "172.30.2.0/30"}, {"start": "172.30.2.3", "end": "172.30.2.9"}),
             pool("bad", {"start": "172.30.3.9", "end": "172.30.3.1"}),
             pool("mixed", {"start": "172.30.3.1", "end": "fd00::1"}),
             pool("empty")]
    valid, problems = valid_pools(pools)
    assert [p.name for p in valid] == ["good"]
    assert problems["late"].reason == "Overlap" and "pool good" in problems["late"].message
    assert problems["self"].reason == "InvalidSpec" and "of the same pool" in problems["self"].message
    assert "after end" in problems["bad"].message
    assert "different families" in problems["mixed"].message
    assert "no ranges" in problems["empty"].message
    result = allocate(valid, problems, [parse_lb_service(service("a", current=("172.30.1.131",)))], {})
    assert result.addresses["default/a"] == ("172.30.1.131",)


# --- property: an address is never handed out twice ---------------------------------------------

BASE4, BASE6 = int(ipaddress.IPv4Address("172.30.1.0")), int(ipaddress.IPv6Address("fd00:172:30:1::"))


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def addr(family: int, offset: int) -> str:
        return str(ipaddress.IPv4Address(BASE4 + offset) if family == 4 else ipaddress.IPv6Address(BASE6 + offset))

    pools = []
    for i in range(draw(st.integers(0, 4))):
        ranges = []
        for _ in range(draw(st.integers(1, 3))):
            family = draw(st.sampled_from((4, 6)))
            first = draw(st.integers(0, 20))
            ranges.append({"start": addr(family, first), "end": addr(family, first + draw(st.integers(0, 4)))})
        pools.append(pool(f"p{i}", *ranges, created=f"2026-01-01T00:00:{i:02d}Z",
                          avoidBuggyIPs=draw(st.booleans())))
    services = []
    for i in range(draw(st.integers(0, 12))):
        families = draw(st.sampled_from((("IPv4",), ("IPv6",), ("IPv4", "IPv6"), ("IPv6", "IPv4"))))
        current = tuple(addr(draw(st.sampled_from((4, 6))), draw(st.integers(0, 25)))
                        for _ in range(draw(st.integers(0, 2))))
        spec = {"loadBalancerIP": addr(4, draw(st.integers(0, 25)))} if draw(st.booleans()) else {}
        services.append(service(f"s{i}", created=f"2026-01-01T00:{draw(st.integers(0, 5)):02d}:00Z",
                                families=families, current=current,
                                type_=draw(st.sampled_from(("LoadBalancer", "LoadBalancer", "NodePort"))), **spec))
    return pools, services


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_no_address_is_held_twice_and_every_address_is_in_a_pool(case: tuple[list, list]) -> None:
    pools, services = case
    result = run(pools, services)
    valid, _ = valid_pools(pools)
    held = [ip for addresses in result.addresses.values() for ip in addresses]
    assert len(held) == len(set(held)), result.addresses
    for ip in held:
        value = ipaddress.ip_address(ip)
        assert any(p.usable(value.version, int(value)) for p in valid), ip
    for key, addresses in result.addresses.items():  # one address per family at most
        assert len({ipaddress.ip_address(a).version for a in addresses}) == len(addresses), key
    assert sum(u.allocated for u in result.usage.values()) == len(held)
    # A restart (the same objects with the status just written) gives exactly the same allocation.
    by_key = {f"{s['metadata']['namespace']}/{s['metadata']['name']}": s for s in services}
    for key, addresses in result.addresses.items():
        by_key[key]["status"]["loadBalancer"]["ingress"] = [{"ip": a} for a in addresses]
    def held_by(allocation: Allocation) -> dict[str, tuple[str, ...]]:
        return {k: v for k, v in allocation.addresses.items() if v}

    assert held_by(run(pools, list(by_key.values()))) == held_by(result)
