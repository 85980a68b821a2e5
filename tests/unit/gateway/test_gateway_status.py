"""The Gateway API status decisions (operators/gateway/status.py): what is written, and when nothing is."""

from __future__ import annotations

import datetime
from typing import Any

from test_gateway_model import CLASS, gateway, http, route, service

from operators.gateway.offline import model_from_objects
from operators.gateway.status import StatusPatch, seen_of, status_patches

T0 = datetime.datetime(2026, 12, 7, 10, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(hours=1)
KEYS = {"GatewayClass": lambda o: o["metadata"]["name"],
        "Gateway": lambda o: f"{o['metadata']['namespace']}/{o['metadata']['name']}"}
KEYS["HTTPRoute"] = KEYS["Gateway"]


def patches(*objects: dict, now: datetime.datetime = T0, addresses: tuple[str, ...] = ("192.0.2.10",)
            ) -> dict[str, StatusPatch]:
    """The patches for the objects (as the watch saw them, resourceVersion "7", generation 3), by kind/key."""
    _, _, status = model_from_objects(list(objects))
    for o in objects:
        o["metadata"] |= {"resourceVersion": "7", "generation": 3}
    seen = {(o["kind"], KEYS[o["kind"]](o)): seen_of(o) for o in objects if o["kind"] in KEYS}
    return {f"{p.kind} {p.namespace}/{p.name}": p for p in status_patches(status, seen, addresses, now)}


def applied(obj: dict, found: dict[str, StatusPatch], key: str) -> dict:
    return obj | {"status": dict(found[key].body["status"])}


def conditions(body: Any) -> dict[str, tuple[str, str, int, str]]:
    return {c["type"]: (c["status"], c["reason"], c["observedGeneration"], c["lastTransitionTime"]) for c in body}


def test_our_gateway_class_is_accepted_with_its_generation() -> None:
    found = patches(CLASS)
    assert conditions(found["GatewayClass /knet"].body["status"]["conditions"])["Accepted"] == (
        "True", "Accepted", 3, "2026-12-07T10:00:00Z")


def test_another_controllers_class_gets_no_status() -> None:
    other = CLASS | {"metadata": {"name": "theirs"}, "spec": {"controllerName": "example.com/other"}}
    assert patches(other) == {}


def test_the_gateway_lists_its_listeners_routes_kinds_and_address() -> None:
    status = patches(CLASS, gateway(), route(), service())["Gateway infra/gw"].body["status"]
    listener = status["listeners"][0]
    assert (listener["name"], listener["attachedRoutes"]) == ("http", 1)
    assert listener["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]
    assert status["addresses"] == [{"type": "IPAddress", "value": "192.0.2.10"}]
    assert conditions(status["conditions"])["Programmed"][:2] == ("True", "Programmed")


def test_a_listener_of_an_unsupported_protocol_supports_no_route_kind() -> None:
    gw = gateway(http(), {"name": "invalid", "port": 1111, "protocol": "INVALID"})
    status = patches(CLASS, gw)["Gateway infra/gw"].body["status"]
    kinds = {ls["name"]: ls["supportedKinds"] for ls in status["listeners"]}
    assert kinds == {"http": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}], "invalid": []}
    assert conditions(status["conditions"])["Accepted"][:2] == ("True", "ListenersNotValid")


def test_a_hostname_address_is_typed_hostname() -> None:
    status = patches(CLASS, gateway(), addresses=("lb.example.com",))["Gateway infra/gw"].body["status"]
    assert status["addresses"] == [{"type": "Hostname", "value": "lb.example.com"}]


def test_a_patch_names_the_resource_version_it_was_computed_from() -> None:
    assert patches(CLASS)["GatewayClass /knet"].body["metadata"] == {"resourceVersion": "7"}


def test_a_status_already_written_is_not_written_again_later() -> None:
    objects = [CLASS, gateway(), route(), service()]
    first = patches(*objects)
    again = [applied(o, first, f"{o['kind']} {o['metadata'].get('namespace', '')}/{o['metadata']['name']}")
             if o["kind"] in KEYS else o for o in objects]
    assert patches(*again, now=T1) == {}


def gateway_after(spec: dict) -> dict[str, tuple[str, str, int, str]]:
    """The Gateway's conditions an hour after its first status was written, once its spec is `spec`."""
    gw = gateway()
    first = patches(CLASS, gw, route(), service())
    changed = applied(gw, first, "Gateway infra/gw") | {"spec": {"gatewayClassName": "knet", **spec}}
    return conditions(patches(CLASS, changed, route(), service(), now=T1)["Gateway infra/gw"].body["status"][
        "conditions"])


def test_a_condition_that_flips_moves_its_transition_time() -> None:
    after = gateway_after({"listeners": [http()], "addresses": [{"value": "192.0.2.99"}]})
    assert after["Accepted"] == ("False", "UnsupportedAddress", 3, "2026-12-07T11:00:00Z")


def test_a_condition_that_keeps_its_status_keeps_its_transition_time_whatever_its_reason() -> None:
    after = gateway_after({"listeners": [http(), http(name="other", protocol="UDP")]})
    assert after["Accepted"] == ("True", "ListenersNotValid", 3, "2026-12-07T10:00:00Z")


def test_route_parents_echo_the_parent_ref_and_keep_other_controllers() -> None:
    theirs = {"parentRef": {"name": "elsewhere"}, "controllerName": "example.com/other", "conditions": []}
    r = route(parent={"name": "gw", "namespace": "infra", "sectionName": "http"}) | {
        "status": {"parents": [theirs]}}
    parents = patches(CLASS, gateway(), r, service())["HTTPRoute app/r"].body["status"]["parents"]
    assert parents[0] == theirs
    assert (parents[1]["parentRef"], parents[1]["controllerName"]) == (
        {"name": "gw", "namespace": "infra", "sectionName": "http"}, "knet.io/gateway-nginx")
    assert conditions(parents[1]["conditions"])["Accepted"][:2] == ("True", "Accepted")


def test_a_route_that_leaves_our_gateway_loses_our_parent_entry() -> None:
    first = patches(CLASS, gateway(), route(), service())
    moved = applied(route(parent={"name": "not-ours", "namespace": "infra"}), first, "HTTPRoute app/r")
    assert patches(CLASS, gateway(), moved, service())["HTTPRoute app/r"].body["status"] == {"parents": []}


def test_an_object_the_watch_has_not_seen_is_left_for_the_next_sync() -> None:
    _, _, status = model_from_objects([CLASS, gateway()])
    assert status_patches(status, {}, (), T0) == []
