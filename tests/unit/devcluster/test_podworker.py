"""The pod worker and its node meet only through `PodHost`: a worker runs against plain functions.

A hostNetwork pod needs no namespace of its own, so its sandbox, status and container plan can be made
here without root, with a `PodHost` that records what the worker asked of its node.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from operators.devcluster import podworker
from operators.devcluster.podhost import PodHost
from operators.devcluster.podworker import PodWorker

Obj = dict[str, Any]


def imported_modules(module: Any) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out |= {f"{node.module}"} if node.module else set()
            out |= {f"{node.module or ''}.{a.name}".lstrip(".") for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_the_worker_does_not_import_the_runtime() -> None:
    assert not any("noderuntime" in m for m in imported_modules(podworker))


def fake_host(tmp_path: Path, calls: list[tuple]) -> PodHost:
    def record(name: str, result: Any = None) -> Any:
        def call(*args: Any) -> Any:
            calls.append((name, *args))
            return result
        return call

    return PodHost(
        node="w1", node_ns="node-w1", node_ips=("10.0.0.2",), pod_cidrs=("10.244.1.0/24",), node_resolv="",
        dns_service_ip="10.96.0.10", kubernetes_service_ip="10.96.0.1", knet_image="knet",
        pods_dir=tmp_path / "pods", created_paths=tmp_path / "created-paths",
        pod_ns=lambda uid: f"pod-{uid}", allocate_ips=record("allocate_ips", ["10.244.1.2"]),
        release_ips=record("release_ips"), lookup=lambda ns: lambda kind, name: None,
        token=record("token", ("t", 3600)), event=record("event"), patch_status=record("patch_status", True),
        delete_pod=record("delete_pod"), forget=record("forget"), log=record("log"),
    )


def host_network_pod() -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
        "spec": {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet",
                 "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
    }


def test_a_worker_sets_up_publishes_and_plans_through_its_host(tmp_path: Path) -> None:
    calls: list[tuple] = []
    w = PodWorker(fake_host(tmp_path, calls), host_network_pod())
    assert w.netns == "node-w1"
    w.setup()
    assert w.ready_sandbox and w.pod_ips == ["10.0.0.2"]
    assert (tmp_path / "pods" / "u1" / "resolv.conf").read_text().startswith("nameserver 10.96.0.10")
    w.publish()
    (_, ns, pod, status), = [c for c in calls if c[0] == "patch_status"]
    assert (ns, pod, status["hostIP"], status["podIP"]) == ("ns", "web", "10.0.0.2", "10.0.0.2")
    argv, plan = w.plan(w.main[0])
    assert argv[-1] == "pause" and plan["netns"] == "node-w1" and plan["hostname"] == "w1"
    assert plan["env"]["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    w.teardown()
    assert not (tmp_path / "pods" / "u1").exists()
    assert not any(c[0] in ("allocate_ips", "release_ips") for c in calls)  # the node's addresses are not leased


def test_a_pod_network_worker_runs_in_the_namespace_its_host_names(tmp_path: Path) -> None:
    pod = host_network_pod()
    pod["spec"]["hostNetwork"] = False
    assert PodWorker(fake_host(tmp_path, []), pod).netns == "pod-u1"
