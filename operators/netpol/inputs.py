"""Kubernetes objects (API dicts) -> the typed views the compiler needs, for offline use and explain."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from operators.kube.objects import key, of_kind
from operators.kube.parse import Problem
from operators.kube.pods import Namespace, Pod, parse_namespace, parse_pod
from operators.netpol.policy import Network, Policy, parse_network, parse_policy


@dataclass(frozen=True)
class Inputs:
    policies: tuple[Policy, ...]
    pods: tuple[Pod, ...]
    namespaces: tuple[Namespace, ...]
    pod_cidrs: dict[str, tuple[Network, ...]]  # by node name, from Node.spec.podCIDRs
    problems: tuple[Problem, ...]


def _last_wins(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One object per key, the last given (as a later `kubectl apply` would leave it), sorted by key."""
    last = {key(o): o for o in objects}
    return [last[k] for k in sorted(last)]


def parse_objects(objects: Iterable[dict[str, Any]]) -> Inputs:
    """The NetworkPolicies (networking.k8s.io/v1), Pods, Namespaces and Nodes among `objects`."""
    objects = list(objects)
    problems: list[Problem] = []
    policies: list[Policy] = []
    for obj in _last_wins(of_kind(objects, "NetworkPolicy", "networking.k8s.io/")):
        policy, probs = parse_policy(obj)
        problems += probs
        if policy:
            policies.append(policy)
    pods: list[Pod] = []
    for obj in _last_wins(of_kind(objects, "Pod", "v1")):
        pod, probs = parse_pod(obj)
        problems += probs
        pods.append(pod)
    namespaces: list[Namespace] = []
    for obj in _last_wins(of_kind(objects, "Namespace", "v1")):
        ns, probs = parse_namespace(obj)
        problems += probs
        namespaces.append(ns)
    cidrs: dict[str, tuple[Network, ...]] = {}
    for obj in _last_wins(of_kind(objects, "Node", "v1")):
        spec = obj.get("spec") or {}
        raw = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
        nets = [parse_network(c) for c in raw]
        if None in nets:
            problems.append(Problem("Node", "", key(obj), f"ignored invalid podCIDRs {raw!r}"))
        cidrs[key(obj)] = tuple(n for n in nets if n is not None)
    return Inputs(tuple(policies), tuple(pods), tuple(namespaces), cidrs, tuple(problems))
