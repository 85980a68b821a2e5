"""Each Gateway on an address of its own (operators/gateway/addresses.py, services.py): the nginx ports its
listeners get, the servers made per nginx port, the Service and EndpointSlices it should have, the writes that
get there, and the status that reports the address."""

from __future__ import annotations

import datetime
import re
from typing import Any

from test_gateway_model import CLASS, gateway, http, route, rule, service

from operators.gateway.addresses import allocate, parse_range
from operators.gateway.model import Status
from operators.gateway.offline import model_from_objects, status_text
from operators.gateway.services import MANAGED_BY as MANAGED
from operators.gateway.services import (
    Held,
    changes,
    gateway_addresses,
    held_of,
    ingress_endpoints,
    service_name,
    wanted,
)
from operators.gateway.status import seen_of, status_patches
from operators.gateway.views import parse_gateway
from operators.ingress.model import IngressModel
from operators.kube.services import parse_endpoint_slice

OWN = (20000, 20999)
T0 = datetime.datetime(2026, 12, 7, 10, 0, tzinfo=datetime.UTC)


def gw(name: str, *listeners: dict, created: str = "2026-01-01T00:00:00Z") -> dict:
    obj = gateway(*listeners, name=name, created=created)
    obj["metadata"]["uid"] = f"uid-{name}"
    return obj


def own(*objects: dict) -> tuple[IngressModel, Status, list[str]]:
    model, problems, status = model_from_objects([CLASS, *objects], own_ports=OWN)
    return model, status, [str(p) for p in problems]


def ingress_slice(*ips: str, ready: bool = True) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "knet-ingress-x", "namespace": "knet-system",
                         "labels": {"kubernetes.io/service-name": "knet-ingress"}},
            "ports": [{"name": "http", "port": 80}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}, "nodeName": "n1"} for ip in ips]}


def test_each_gateway_and_listener_port_gets_its_own_nginx_port_in_the_range() -> None:
    gws = [parse_gateway(gw(n, http(), http("alt", 8080)))[0] for n in ("a", "b")]
    plan = allocate(gws, *OWN)
    assert len(plan) == 4 and len(set(plan.values())) == 4
    assert all(OWN[0] <= p <= OWN[1] for p in plan.values())
    assert allocate(reversed(gws), *OWN) == plan, "the plan depends on the Gateways, not the order they come in"


def test_on_a_collision_the_older_gateway_keeps_its_port_and_taken_ports_are_never_given() -> None:
    old, new = (parse_gateway(gw(n, http(), created=c))[0] for n, c in (("a", "2026-01-01T00:00:00Z"),
                                                                         ("b", "2026-02-01T00:00:00Z")))
    alone = allocate([old], 20000, 20001)
    both = allocate([old, new], 20000, 20001)
    assert both[("infra/a", 80)] == alone[("infra/a", 80)] and set(both.values()) == {20000, 20001}
    assert allocate([old, new], 20000, 20001, taken=[20000]) == {("infra/a", 80): 20001}, "the range is full"


def test_a_port_range_is_first_dash_last() -> None:
    assert parse_range("20000-29999") == (20000, 29999)
    for bad in ("20000", "2-1", "0-5", "1-70000", "a-b"):
        try:
            parse_range(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_two_gateways_with_the_same_listener_serve_only_their_own_routes() -> None:
    model, status, _ = own(gw("a"), gw("b"), service(),
                           *(route(rule(), name=f"r{n}", parent={"name": n, "namespace": "infra"}) for n in "ab"))
    plan = dict(status.ports or ())
    for name, other in (("a", "rb"), ("b", "ra")):
        (server,) = [s for s in model.servers if s.gateway and s.listens[0].port == plan[(f"infra/{name}", 80)]]
        routes = {loc.action.route for loc in server.locations if loc.action}
        assert routes == {f"app/r{name}"} and f"app/{other}" not in routes
        assert all(loc.action.listener_port == 80 for loc in server.locations if loc.action)


def test_listeners_may_use_the_ingress_and_pod_ports_when_gateways_have_their_own_addresses() -> None:
    _, _, status = model_from_objects([CLASS, gw("a", http("tls-on-80", 80, protocol="HTTPS", tls={
        "certificateRefs": [{"name": "missing"}]}), http("health", 8080))], taken_ports=(8080,), own_ports=OWN)
    lines = status_text(status)
    assert any("listener health" in line and "Accepted=True" in line for line in lines), lines
    assert not any("Conflicted=True" in line for line in lines), lines


def test_an_accepted_gateway_wants_a_service_owned_by_it_and_slices_to_the_ingress_pods() -> None:
    _, status, _ = own(gw("a", http(), http("alt", 8080)))
    plan = dict(status.ports or ())
    endpoints = ingress_endpoints([parse_endpoint_slice(ingress_slice("10.244.1.5", "10.244.2.6"))[0]],
                                  ("knet-system", "knet-ingress"))
    svc, eps = wanted(status, endpoints)
    assert (svc.kind, svc.namespace, svc.name) == ("Service", "infra", "a-knet")
    md = svc.body["metadata"]
    assert md["labels"]["gateway.networking.k8s.io/gateway-name"] == "a"
    assert md["ownerReferences"] == [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "name": "a",
                                      "uid": "uid-a", "controller": True}]
    assert svc.body["spec"]["type"] == "LoadBalancer" and "selector" not in svc.body["spec"]
    assert [(p["port"], p["targetPort"]) for p in svc.body["spec"]["ports"]] == [
        (80, plan[("infra/a", 80)]), (8080, plan[("infra/a", 8080)])]
    assert eps.body["metadata"]["labels"]["kubernetes.io/service-name"] == "a-knet"
    label_value = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")  # the API server's rule
    values = [v for w in (svc, eps) for v in w.body["metadata"]["labels"].values()]
    assert all(label_value.fullmatch(v) and len(v) <= 63 for v in values), values
    assert [e["addresses"] for e in eps.body["endpoints"]] == [["10.244.1.5"], ["10.244.2.6"]]
    assert [(p["name"], p["port"]) for p in eps.body["ports"]] == [
        (p["name"], p["targetPort"]) for p in svc.body["spec"]["ports"]]


def test_no_service_for_a_gateway_that_is_not_accepted_nor_where_gateways_share_an_address() -> None:
    refused = gw("a")
    refused["spec"]["addresses"] = [{"value": "192.0.2.1"}]
    _, status, _ = own(refused)
    assert wanted(status, {}) == []
    _, _, shared = model_from_objects([CLASS, gw("a")])
    assert wanted(shared, {}) == []


def test_writes_create_what_is_missing_patch_what_differs_and_delete_what_is_not_wanted() -> None:
    _, status, _ = own(gw("a"))
    want = wanted(status, {})
    assert [(c.verb, c.kind) for c in changes(want, [])] == [("create", "Service"), ("create", "EndpointSlice")]
    # as the API server returns them: defaults, node ports and cluster IPs added
    live = [dict(w.body) for w in want]
    live[0] = live[0] | {"spec": {**live[0]["spec"], "clusterIP": "10.96.0.9", "ports": [
        p | {"nodePort": 31000} for p in live[0]["spec"]["ports"]]}}
    held = [h for h in map(held_of, live) if h is not None]
    assert changes(want, held) == []
    stale = Held("Service", "infra", "gone-knet", ())
    moved = [held[0], Held(held[1].kind, held[1].namespace, held[1].name, ())]
    found = [(c.verb, c.name) for c in changes(want, [*moved, stale])]
    assert found == [("patch", "a-knet-ipv4"), ("delete", "gone-knet")]
    assert held_of({"kind": "Service", "metadata": {"name": "mine", "labels": {"app": "x"}}}) is None


def test_service_names_are_gateway_dash_class_or_a_valid_name_with_a_digest() -> None:
    assert service_name("gw", "knet") == "gw-knet"
    for gateway_name in ("my.gateway", "1gw", "g" * 70):
        name = service_name(gateway_name, "knet")
        assert len(name) <= 63 and name[0].isalpha() and set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert service_name("a.b", "knet") != service_name("a-b", "knet")


def _gateway_patch(status: Status, obj: dict, addresses: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    obj["metadata"] |= {"resourceVersion": "7", "generation": 1}
    (patch,) = [p for p in status_patches(status, {("Gateway", "infra/a"): seen_of(obj)}, ("192.0.2.99",), T0,
                                          addresses) if p.kind == "Gateway"]
    return dict(patch.body["status"])


def test_a_gateway_reports_its_own_address_and_is_not_programmed_without_one() -> None:
    obj = gw("a")
    _, status, _ = own(obj)
    body = _gateway_patch(status, obj, gateway_addresses(status, {("infra", "a-knet"): ("172.18.0.200",)}))
    assert body["addresses"] == [{"type": "IPAddress", "value": "172.18.0.200"}]
    assert {c["type"]: c["status"] for c in body["conditions"]}["Programmed"] == "True"
    body = _gateway_patch(status, obj, gateway_addresses(status, {}))
    assert body["addresses"] == []
    programmed = next(c for c in body["conditions"] if c["type"] == "Programmed")
    assert (programmed["status"], programmed["reason"]) == ("False", "AddressNotAssigned")


def test_infrastructure_labels_and_annotations_go_onto_the_service_under_knets_own_labels() -> None:
    obj = gw("a")
    obj["spec"]["infrastructure"] = {"labels": {"team": "web", MANAGED: "someone"}, "annotations": {"note": "x"}}
    _, status, _ = own(obj)
    svc, eps = wanted(status, {})
    for body in (svc.body, eps.body):
        assert body["metadata"]["labels"]["team"] == "web" and body["metadata"]["labels"][MANAGED] == "knet-gateway"
        assert body["metadata"]["annotations"] == {"note": "x"}
    live = {**svc.body, "metadata": {**svc.body["metadata"], "labels": {**svc.body["metadata"]["labels"], "x": "y"}}}
    assert changes([svc], [held_of(live)]) == [], "labels someone else added are no difference"
    stale = {**svc.body, "metadata": {**svc.body["metadata"], "annotations": {}}}
    assert [c.verb for c in changes([svc], [held_of(stale)])] == ["patch"]


def test_a_gateway_with_infrastructure_parameters_is_not_accepted() -> None:
    obj = gw("a")
    obj["spec"]["infrastructure"] = {"parametersRef": {"group": "invalid.io", "kind": "X", "name": "x"}}
    _, status, _ = own(obj)
    assert "Accepted=False(InvalidParameters)" in status_text(status)[1]
    assert wanted(status, {}) == []


def test_an_address_without_a_value_asks_for_any_and_the_gateway_is_accepted() -> None:
    obj = gw("a")
    obj["spec"]["addresses"] = [{"type": "IPAddress"}]
    _, status, _ = own(obj)
    assert "Accepted=True" in status_text(status)[1] and len(wanted(status, {})) == 2
