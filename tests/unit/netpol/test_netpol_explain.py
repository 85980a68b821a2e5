"""explain: verdicts with the policies and rule indexes responsible, on each side."""

from __future__ import annotations

import pytest

from operators.kube.parse import Problem
from operators.kube.pods import parse_namespace, parse_pod
from operators.netpol.explain import explain, explain_views
from operators.netpol.offline import format_verdict
from operators.netpol.policy import parse_policy


def pod(ns, name, ip, labels=None, node="n1", **spec):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": ns, "name": name, "labels": labels or {}},
        "spec": {"nodeName": node, **spec},
        "status": {"phase": "Running", "podIPs": [{"ip": ip}]},
    }


def netpol(ns, name, spec):
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
    }


OBJECTS = [
    pod(
        "prod",
        "web",
        "10.0.0.1",
        {"app": "web"},
        containers=[{"ports": [{"name": "http", "containerPort": 8080}]}],
    ),
    pod("prod", "client", "10.0.0.2", {"app": "client"}),
    pod("dev", "client", "10.0.1.2", {"app": "client"}),
    pod("prod", "node-agent", "172.18.0.2", {"app": "client"}, hostNetwork=True),
    netpol("prod", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    netpol(
        "prod",
        "web",
        {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "nobody"}}}]},
                {"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": "http"}]},
                {"from": [{"namespaceSelector": {}}], "ports": [{"port": 8000, "endPort": 8080}]},
            ],
        },
    ),
    netpol(
        "prod",
        "client-egress",
        {"podSelector": {"matchLabels": {"app": "client"}}, "egress": [{"ports": [{"port": 8080}]}]},
    ),
]


def test_allowed_by_rules_on_both_sides() -> None:
    v = explain(OBJECTS, "prod/client", "prod/web", 8080)
    assert v.allowed and (v.src_ip, v.dst_ip) == ("10.0.0.2", "10.0.0.1")
    assert v.egress.policies == ("prod/client-egress", "prod/deny-all")
    assert v.egress.allowed_by == (("prod/client-egress", 0),)
    assert v.ingress.policies == ("prod/deny-all", "prod/web")
    assert v.ingress.allowed_by == (("prod/web", 1), ("prod/web", 2))
    assert format_verdict(v) == (
        "ALLOWED: prod/client -> prod/web 8080/TCP (10.0.0.2 -> 10.0.0.1)\n"
        "  egress  prod/client: isolated by prod/client-egress, prod/deny-all; allowed by"
        " prod/client-egress egress[0]\n"
        "  ingress prod/web: isolated by prod/deny-all, prod/web; allowed by prod/web ingress[1],"
        " prod/web ingress[2]\n"
    )


def test_denied_on_one_side_only() -> None:
    v = explain(OBJECTS, "dev/client", "prod/web", 8081, "tcp")
    assert not v.allowed and v.egress.allowed and not v.egress.isolated
    assert not v.ingress.allowed and v.ingress.allowed_by == ()
    assert (
        "ingress prod/web: isolated by prod/deny-all, prod/web; denied: no rule allows it"
        in format_verdict(v)
    )
    v = explain(OBJECTS, "prod/web", "dev/client", 80)
    assert not v.allowed and not v.egress.allowed and v.ingress.allowed


def test_addresses_and_host_network() -> None:
    v = explain(OBJECTS, "10.0.1.2", "10.0.0.1", 8000)
    assert v.egress.endpoint == "dev/client" and v.ingress.endpoint == "prod/web" and v.allowed
    v = explain(OBJECTS, "192.0.2.1", "prod/web", 8000)
    assert v.egress.endpoint == "192.0.2.1" and not v.egress.subject and not v.allowed
    v = explain(OBJECTS, "prod/node-agent", "prod/web", 8000)
    assert v.egress.endpoint == "prod/node-agent (hostNetwork)" and not v.allowed
    assert "not a pod on the pod network" in format_verdict(v)


def test_named_port_needs_the_protocol() -> None:
    assert not explain(OBJECTS, "prod/client", "prod/web", 8080, "UDP").ingress.allowed


def test_problems_are_reported() -> None:
    bad = netpol("prod", "bad", {"podSelector": {}, "ingress": [{"ports": [{"port": "nope"}]}]})
    v = explain([*OBJECTS, bad], "prod/client", "prod/web", 8080)
    message = "spec.ingress[0]: named port 'nope'/TCP is declared by no selected pod"
    assert v.problems == (Problem("NetworkPolicy", "prod", "bad", message),)
    assert format_verdict(v).endswith(
        "problems:\n  NetworkPolicy prod/bad: spec.ingress[0]: named port 'nope'/TCP is declared by no selected pod\n")


@pytest.mark.parametrize(
    ("src", "dst", "port", "proto", "message"),
    [
        ("prod/ghost", "prod/web", 80, "TCP", "no pod 'prod/ghost'"),
        ("prod/client", "fd00::1", 80, "TCP", "share no address family"),
        ("prod/client", "prod/web", 0, "TCP", "invalid port"),
        ("prod/client", "prod/web", 80, "ICMP", "invalid port"),
    ],
)
def test_bad_arguments(src, dst, port, proto, message) -> None:
    with pytest.raises(ValueError, match=message):
        explain(OBJECTS, src, dst, port, proto)


def test_pod_without_address() -> None:
    objects = [
        *OBJECTS,
        {"kind": "Pod", "apiVersion": "v1", "metadata": {"namespace": "prod", "name": "new"}},
    ]
    with pytest.raises(ValueError, match="has no address yet"):
        explain(objects, "prod/new", "prod/web")


def test_explain_views_from_parsed_indexes() -> None:
    pods = [parse_pod(o)[0] for o in OBJECTS if o["kind"] == "Pod"]
    policies = [parse_policy(o)[0] for o in OBJECTS if o["kind"] == "NetworkPolicy"]
    namespaces = [parse_namespace({"metadata": {"name": "prod"}})[0]]
    v = explain_views(policies, pods, namespaces, "prod/client", "prod/web", 8080)
    assert v == explain(OBJECTS, "prod/client", "prod/web", 8080)
