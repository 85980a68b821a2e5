"""Synthetic NetworkPolicy inputs at scale: namespaces, pods spread over nodes, and policies mixing
every kind of peer (pod and namespace selectors with matchLabels and matchExpressions, ipBlock with
except) and port (number, name, endPort range), as the views the agent keeps."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_network
from typing import Any

from operators.kube.pods import Namespace, Pod, parse_namespace, parse_pod
from operators.netpol.policy import Network, Policy, parse_policy

NAMESPACES = 100
NODES = 50
APPS = 20


@dataclass(frozen=True)
class Cluster:
    policies: tuple[Policy, ...]
    pods: tuple[Pod, ...]
    namespaces: tuple[Namespace, ...]

    def node_cidr(self, node: int) -> Network:
        return ip_network(f"10.200.{node}.0/24")


def pod_ip(i: int) -> str:
    """Pod i lives on node i % NODES, as its (i // NODES + 1)th address."""
    return f"10.200.{i % NODES}.{i // NODES + 1}"


def pod_body(i: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": f"ns-{i % NAMESPACES}", "name": f"pod-{i}", "labels": labels or {
                "app": f"app-{i % APPS}", "tier": f"tier-{i % 3}"}},
            "spec": {"nodeName": f"node-{i % NODES}", "containers": [{"ports": [
                {"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]},
            "status": {"phase": "Running", "podIP": pod_ip(i)}}


def policy_body(i: int) -> dict[str, Any]:
    peers = [
        {"namespaceSelector": {"matchLabels": {"team": f"t{i % 10}"}}, "podSelector": {"matchLabels": {
            "tier": f"tier-{i % 3}"}}},
        {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": [
            f"app-{(i + 1) % APPS}", f"app-{(i + 2) % APPS}"]}]}},
        {"ipBlock": {"cidr": f"192.168.{i % 256}.0/24", "except": [f"192.168.{i % 256}.128/25"]}},
    ]
    ports = [{"port": 8080}, {"port": "http"}, {"port": 9000, "endPort": 9100}]
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"app": f"app-{i % APPS}"}},
                            "ingress": [{"from": peers, "ports": ports}]}
    if i % 5 == 0:
        spec["egress"] = [{"to": [{"namespaceSelector": {}}], "ports": [{"port": 53, "protocol": "UDP"}]}]
        spec["policyTypes"] = ["Ingress", "Egress"]
    return {"metadata": {"namespace": f"ns-{i % NAMESPACES}", "name": f"policy-{i}"}, "spec": spec}


def cluster(policies: int, pods: int) -> Cluster:
    views = [parse_policy(policy_body(i))[0] for i in range(policies)]
    return Cluster(
        tuple(v for v in views if v is not None),
        tuple(parse_pod(pod_body(i))[0] for i in range(pods)),
        tuple(parse_namespace({"metadata": {"name": f"ns-{n}", "labels": {"team": f"t{n % 10}"}}})[0]
              for n in range(NAMESPACES)),
    )
