"""Pod, Namespace and NetworkPolicy views parsed from API dicts."""

from __future__ import annotations

import ipaddress

from operators.kube.parse import Problem
from operators.kube.pods import ContainerPort, parse_namespace, parse_pod
from operators.netpol.policy import PolicyPort, parse_policy, valid_port_name


def test_pod_view() -> None:
    pod, problems = parse_pod(
        {
            "metadata": {"namespace": "prod", "name": "web", "labels": {"app": "web"}},
            "spec": {
                "nodeName": "n1",
                "containers": [
                    {"name": "a", "ports": [{"name": "http", "containerPort": 8080}]},
                    {"name": "b", "ports": [{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 0}]},
                ],
            },
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::0001"}, {"ip": "x"}]},
        }
    )
    assert pod.key == "prod/web" and pod.node_name == "n1" and pod.phase == "Running"
    assert pod.ips == ("10.0.0.1", "fd00::1")
    assert pod.ports == (ContainerPort("", 53, "UDP"), ContainerPort("http", 8080, "TCP"))
    assert pod.named_ports("http", "TCP") == (8080,) and pod.named_ports("http", "UDP") == ()
    assert pod.has_pod_network
    assert [(p.kind, p.namespace, p.name) for p in problems] == [("Pod", "prod", "web")] * 2


def test_pod_fallbacks_and_eligibility() -> None:
    pod, _ = parse_pod({"metadata": {"name": "p"}, "status": {"podIP": "10.0.0.2"}})
    assert pod.namespace == "default" and pod.ips == ("10.0.0.2",) and pod.phase == "Pending"
    host, _ = parse_pod(
        {"metadata": {"name": "h"}, "spec": {"hostNetwork": True}, "status": {"podIP": "1.2.3.4"}}
    )
    assert not host.has_pod_network
    done, _ = parse_pod({"metadata": {"name": "d"}, "status": {"phase": "Failed", "podIP": "10.0.0.3"}})
    assert not done.has_pod_network
    new, _ = parse_pod({"metadata": {"name": "n"}})
    assert not new.has_pod_network and new.ips == ()


def test_namespace_gets_its_name_label() -> None:
    ns, problems = parse_namespace({"metadata": {"name": "prod", "labels": {"team": "blue", "bad key": "x"}}})
    assert dict(ns.labels) == {"team": "blue", "kubernetes.io/metadata.name": "prod"}
    assert problems == [Problem("Namespace", "", "prod", "ignored invalid labels ['bad key']")]


def policy(spec, name="p"):
    return parse_policy({"metadata": {"namespace": "ns", "name": name}, "spec": spec})


def test_policy_types_inferred_and_given() -> None:
    p, _ = policy({"podSelector": {}})
    assert p.ingress == () and p.egress is None
    p, _ = policy({"podSelector": {}, "egress": [{}]})
    assert p.ingress == () and p.egress is not None and len(p.egress) == 1
    p, _ = policy({"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}]})
    assert p.ingress is None and p.egress == ()
    p, problems = policy({"podSelector": {}, "policyTypes": ["Sideways"]})
    assert p.ingress == () and p.egress is None and "policyTypes" in problems[0].message


def test_empty_and_missing_lists_mean_all() -> None:
    p, _ = policy({"ingress": [{"from": [], "ports": []}, {}]})
    assert [(r.peers, r.ports) for r in p.ingress] == [(None, None), (None, None)]


def test_invalid_entries_fail_closed() -> None:
    p, problems = policy({"ingress": [{"from": [{"ipBlock": {"cidr": "nope"}}], "ports": [{"port": 0}]}]})
    assert p.ingress[0].peers == () and p.ingress[0].ports == ()
    assert [(x.kind, x.namespace, x.name) for x in problems] == [("NetworkPolicy", "ns", "p")] * 2
    assert all(x.message.startswith("spec.ingress[0]") for x in problems)


def test_ports() -> None:
    p, problems = policy(
        {
            "ingress": [
                {
                    "ports": [
                        {"port": 80},
                        {"port": "http", "protocol": "UDP"},
                        {"port": 1000, "endPort": 2000, "protocol": "SCTP"},
                        {"protocol": "UDP"},
                        {"port": 5, "endPort": 4},
                        {"port": "80"},
                        {"port": True},
                    ]
                }
            ]
        }
    )
    assert p.ingress[0].ports == (
        PolicyPort("TCP", 80),
        PolicyPort("UDP", "http"),
        PolicyPort("SCTP", 1000, 2000),
        PolicyPort("UDP", None),
    )
    assert len(problems) == 3


def test_port_names() -> None:
    for ok in ("http", "h2c", "metrics-1", "a"):
        assert valid_port_name(ok), ok
    for bad in ("", "80", "HTTP", "a--b", "-a", "a-", "abcdefghijklmnop", 8):
        assert not valid_port_name(bad), bad


def test_ip_block_masks_host_bits_and_checks_excepts() -> None:
    p, problems = policy(
        {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.7/8", "except": ["10.1.0.0/16"]}}]}]}
    )
    block = p.ingress[0].peers[0].ip_block
    assert block.cidr == ipaddress.ip_network("10.0.0.0/8") and problems == []
    for bad in (["11.0.0.0/16"], ["fd00::/64"], ["10.0.0.0/7"]):
        p, problems = policy({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": bad}}]}]})
        assert p.ingress[0].peers == () and len(problems) == 1


def test_peer_needs_exactly_one_kind() -> None:
    p, problems = policy({"egress": [{"to": [{}, {"ipBlock": {"cidr": "1.0.0.0/8"}, "podSelector": {}}]}]})
    assert p.egress[0].peers == () and len(problems) == 2


def test_bad_pod_selector_skips_policy_and_bad_name_is_hashed() -> None:
    p, problems = policy({"podSelector": {"matchLabels": {"a": "b c"}}})
    assert p is None
    assert problems[-1] == Problem("NetworkPolicy", "ns", "p", "policy skipped: its podSelector is invalid")
    p, problems = policy({}, name='x"; flush ruleset')
    assert p is not None and p.ref.label.startswith("policy-") and '"' not in p.ref.label
    assert "invalid namespace or name" in problems[0].message


def test_a_trailing_newline_is_no_port_name() -> None:
    assert valid_port_name("http") and not valid_port_name("http\n")
