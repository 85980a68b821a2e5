"""Parsing Services, EndpointSlices and Nodes: both dict spellings, and never a crash on bad input."""

from __future__ import annotations

from hypothesis import given, settings
from proxy_strategies import json_values

from operators.kube.services import Problem, parse_endpoint_slice, parse_node, parse_service

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {
        "type": "LoadBalancer",
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10", "fd00:10:96::a"],
        "ipFamilies": ["IPv4", "IPv6"],
        "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web", "nodePort": 30080}],
        "externalIPs": ["198.51.100.1"],
        "loadBalancerSourceRanges": ["192.168.1.7/16"],
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
        "externalTrafficPolicy": "Local",
        "internalTrafficPolicy": "Cluster",
        "healthCheckNodePort": 32000,
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.1"},
                                            {"ip": "172.18.255.2", "ipMode": "Proxy"}]}},
}

SLICE = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {"name": "web-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
    "endpoints": [
        {"addresses": ["10.244.1.5"], "conditions": {"ready": True}, "nodeName": "node-a", "zone": "z1"},
        {"addresses": ["10.244.2.5"], "conditions": {"ready": False, "serving": True, "terminating": True},
         "nodeName": "node-b"},
    ],
}

NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "node-a"},
    "spec": {"podCIDRs": ["10.244.1.0/24"]},
    "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"},
                             {"type": "ExternalIP", "address": "203.0.113.2"},
                             {"type": "Hostname", "address": "node-a"}]},
}


def test_service_view() -> None:
    svc, problems = parse_service(SERVICE)
    assert problems == []
    assert svc is not None
    assert svc.key == "shop/web"
    assert svc.cluster_ips == ("10.96.0.10", "fd00:10:96::a")
    assert svc.ports[0].target_port == "web" and svc.ports[0].node_port == 30080
    assert svc.load_balancer_ips == ("172.18.255.1",)  # ipMode Proxy: the LB does the proxying
    assert svc.load_balancer_source_ranges == ("192.168.0.0/16",)
    assert (svc.session_affinity, svc.affinity_timeout) == ("ClientIP", 60)
    assert svc.label("app") == "web" and not svc.headless and not svc.external_name


def test_slice_and_node_views() -> None:
    sl, problems = parse_endpoint_slice(SLICE)
    assert problems == [] and sl is not None
    assert (sl.service_name, sl.family, sl.ports[0].port) == ("web", 4, 8080)
    ready, draining = sl.endpoints
    assert (ready.ready, ready.serving, ready.terminating, ready.zone) == (True, True, False, "z1")
    assert (draining.ready, draining.serving, draining.terminating) == (False, True, True)
    node, problems = parse_node(NODE)
    assert problems == [] and node is not None
    assert (node.internal_ips, node.external_ips, node.pod_cidrs) == (
        ("172.18.0.2",), ("203.0.113.2",), ("10.244.1.0/24",))


def test_defaults() -> None:
    svc, _ = parse_service({"metadata": {"name": "x"},
                            "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}})
    assert svc is not None
    assert (svc.namespace, svc.type, svc.ip_families, svc.session_affinity) == ("default", "ClusterIP",
                                                                               ("IPv4",), "None")
    assert svc.ports[0] == type(svc.ports[0])("", "TCP", 80, 80, 0)
    assert (svc.external_traffic_policy, svc.internal_traffic_policy) == ("Cluster", "Cluster")
    headless, _ = parse_service({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}})
    assert headless is not None and headless.headless


def test_bad_parts_are_dropped_with_problems() -> None:
    svc, problems = parse_service({
        "metadata": {"name": "x", "namespace": "n"},
        "spec": {"clusterIPs": ["10.96.0.1", "10.96.0.2"],
                 "externalIPs": ["fe80::1%eth0", "127.0.0.1", "1.2.3.4"],
                 "ports": [{"name": "a", "port": 0}, {"name": "b", "port": 1, "protocol": "ICMP"},
                           {"name": "c", "port": 2, "targetPort": "Not_A_Name"}, {"port": 3}],
                 "loadBalancerSourceRanges": ["bogus"]},
    })
    assert svc is not None
    assert svc.cluster_ips == ("10.96.0.1",)
    assert svc.external_ips == ("1.2.3.4",)
    assert svc.ports == ()
    assert svc.lb_firewall and svc.load_balancer_source_ranges == ()  # fail closed
    assert all(p.kind == "Service" and (p.namespace, p.name) == ("n", "x") for p in problems)
    assert len(problems) == 8, problems


def test_wrong_family_endpoint_addresses() -> None:
    bad = [{"addresses": ["fd00::1"]}, {"addresses": ["x"]}]
    sl, problems = parse_endpoint_slice({**SLICE, "endpoints": bad})
    assert sl is not None and sl.endpoints == ()
    assert [p.message for p in problems] == [
        "endpoint addresses ['fd00::1'] are not of addressType IPv4; skipped",
        "endpoint addresses: 'x' is not a valid unicast IP address"]


def test_unsafe_names_skip_the_object() -> None:
    for meta in ({"name": "a b"}, {"name": "ok", "namespace": "x;y"}, {"name": 7}, {}):
        svc, problems = parse_service({"metadata": meta, "spec": {"clusterIP": "10.96.0.1"}})
        assert svc is None and len(problems) == 1
    assert str(Problem("Service", "ns", "a", "bad")) == "Service ns/a: bad"


def test_slice_without_service_label_belongs_to_nothing() -> None:
    sl, problems = parse_endpoint_slice({**SLICE, "metadata": {"name": "s"}})
    assert sl is not None and sl.service_name == "" and problems == []


@settings(max_examples=200, deadline=None)
@given(obj=json_values)
def test_parsing_never_raises(obj) -> None:
    for parse in (parse_service, parse_endpoint_slice, parse_node):
        view, problems = parse(obj)
        assert all(isinstance(p, Problem) for p in problems)
        assert view is None or isinstance(view.name, str)
