"""Entries kept per object, Events about problems (once each), and the HTTP answers (kube-proxy's)."""

from __future__ import annotations

import datetime

import kopf
import pytest
from agent_builders import NODE, endpoint_slice, service

from operators.agent.health_check_ports import service_health
from operators.agent.proxy import REASON
from operators.agent.store import ProxyStore, new_trigger, node_entry, service_entry, trigger_time
from operators.kube.services import Problem
from operators.proxy.model import HealthCheck
from operators.runtime.events import event_body, event_name, to_report
from operators.runtime.servers import Status, healthz, parse_addr
from operators.runtime.store import ObjectRef

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def test_entries_hold_views_problems_and_references() -> None:
    bad = service("bad", ports=[{"name": "p", "port": 70000}])
    entry = service_entry(kopf.Body(bad))  # what Kopf hands to the index handlers
    assert entry.view is not None and entry.view.ports == ()
    assert [p.message for p in entry.problems] == ["port p: port 70000 is not a port number (1-65535)"]
    assert entry.ref == ObjectRef("v1", "Service", "default", "bad", "uid-bad")
    unusable = service_entry({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "Bad_Name"}})
    assert unusable.view is None and unusable.problems

    store = ProxyStore([node_entry(NODE)])
    unusable_body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "Bad_Name", "uid": "uid-x"}}
    for body in (bad, unusable_body, service()):
        store.services.handle("ADDED", body)
    store.slices.handle("ADDED", endpoint_slice("dns", "10.244.2.5"))
    views = store.views()
    assert sorted(name for _, name in views.services) == ["bad", "dns"]
    assert len(views.slices[("default", "dns")]) == 1 and views.nodes[0].name == "node-a"
    assert len(store.problems()) == 2
    assert store.ref("Service", "default", "bad") == entry.ref
    assert store.ref("Node", "", "node-a").involved_object() == {  # type: ignore[union-attr]
        "apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": "uid-node"}


def test_trigger_time_of_an_endpoint_slice() -> None:
    stamped = endpoint_slice(annotations={"endpoints.kubernetes.io/last-change-trigger-time": "2026-01-02T03:04:05Z"})
    assert trigger_time(stamped) == NOW.timestamp()
    assert trigger_time(endpoint_slice()) is None
    assert trigger_time(endpoint_slice(annotations={"endpoints.kubernetes.io/last-change-trigger-time": "x"})) is None
    assert new_trigger({}, "uid", 100.0, since=50) and not new_trigger({}, "uid", None, since=50)
    assert not new_trigger({}, "uid", 40.0, since=50)  # from before the agent started
    assert not new_trigger({"uid": 100.0}, "uid", 100.0, since=50)  # the same change again


def test_problems_are_reported_once_and_again_after_they_went_away() -> None:
    a, b = Problem("Service", "ns", "a", "bad port"), Problem("Service", "ns", "b", "bad ip")
    new, seen = to_report(frozenset(), [a, b, a])
    assert new == [a, b]
    new, seen = to_report(seen, [a, b])
    assert new == []
    new, seen = to_report(seen, [b])
    new, seen = to_report(seen, [a, b])
    assert new == [a]


def test_event_body_names_the_object_and_is_shared_by_all_nodes() -> None:
    ref = ObjectRef("v1", "Service", "ns", "web", "uid-1")
    problem = Problem("Service", "ns", "web", "port x: protocol 'ICMP' is not one of TCP, UDP, SCTP")
    body = event_body(ref, REASON, problem.message, "knet-agent", "node-a", NOW)
    assert body["metadata"]["namespace"] == "ns" and body["metadata"]["name"].startswith("web.")
    assert body["involvedObject"] == {"apiVersion": "v1", "kind": "Service", "name": "web", "namespace": "ns",
                                      "uid": "uid-1"}
    assert (body["type"], body["reason"], body["message"]) == ("Warning", "ProxyProblem", problem.message)
    assert body["firstTimestamp"] == "2026-01-02T03:04:05Z" and body["source"]["host"] == "node-a"
    assert event_body(ref, REASON, problem.message, "knet-agent", "node-b", NOW)["metadata"]["name"] == \
        body["metadata"]["name"]
    assert event_name(ref, "another message") != body["metadata"]["name"]
    node = ObjectRef("v1", "Node", "", "node-a", "uid-n")
    assert event_body(node, REASON, "m", "knet-agent", "node-a", NOW)["metadata"]["namespace"] == "default"


def test_health_check_node_port_answers_like_kube_proxy() -> None:
    code, headers, body = service_health(HealthCheck("ns", "web", 31000, 2), proxy_healthy=True)
    assert code == 200
    assert headers["Content-Type"] == "application/json" and headers["X-Load-Balancing-Endpoint-Weight"] == "2"
    assert body == ('{\n\t"service": {\n\t\t"namespace": "ns",\n\t\t"name": "web"\n\t},\n'
                    '\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}')
    assert service_health(HealthCheck("ns", "web", 31000, 0), proxy_healthy=True)[0] == 503
    assert service_health(HealthCheck("ns", "web", 31000, 2), proxy_healthy=False)[0] == 503


def test_healthz_body() -> None:
    status = Status(healthy=True, ready=True, last_updated=NOW - datetime.timedelta(seconds=30), node_eligible=True)
    assert healthz(status, NOW) == (200, '{"lastUpdated": "2026-01-02T03:04:05.000Z",'
                                         '"currentTime": "2026-01-02T03:04:05.000Z", "nodeEligible": true}')
    code, body = healthz(Status(False, True, NOW - datetime.timedelta(seconds=30), True), NOW)
    assert code == 503 and '"lastUpdated": "2026-01-02T03:03:35.000Z"' in body
    assert healthz(Status(True, False, None, node_eligible=False), NOW)[0] == 503
    assert healthz(Status(True, False, None, node_eligible=False), NOW, with_node=False)[0] == 200  # /livez


def test_parse_addr() -> None:
    assert parse_addr("0.0.0.0:10249") == ("0.0.0.0", 10249)
    assert parse_addr("[::]:10256") == ("::", 10256)
    assert parse_addr(":10256") == ("0.0.0.0", 10256)
    for bad in ("10249", "host:http", "h:70000"):
        with pytest.raises(ValueError):
            parse_addr(bad)
