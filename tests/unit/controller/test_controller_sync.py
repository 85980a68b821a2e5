"""The sync shell against fake API clients: what it writes, and that one refused write stops nothing else."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import kubernetes

from operators.controller.controller import Controller, Metrics, Peering
from operators.controller.pools import parse_lb_service
from operators.runtime.schedule import Periods
from operators.runtime.store import ObjectRef

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class FakeCore:
    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.patched: dict[str, Any] = {}
        self.corefile = "old"

    def patch_namespaced_service_status(self, name: str, namespace: str, body: Any, **_: Any) -> None:
        if name in self.refuse:
            raise kubernetes.client.ApiException(status=404, reason="Not Found")
        self.patched[f"{namespace}/{name}"] = body

    def read_namespaced_config_map(self, name: str, namespace: str, **_: Any) -> Any:
        return kubernetes.client.V1ConfigMap(data={"Corefile": self.corefile})

    def patch_namespaced_config_map(self, name: str, namespace: str, body: Any, **_: Any) -> None:
        self.corefile = body["data"]["Corefile"]


class FakeCustom:
    def __init__(self) -> None:
        self.status: dict[str, Any] = {}

    def patch_cluster_custom_object_status(self, group: str, version: str, plural: str, name: str, body: Any,
                                           **_: Any) -> None:
        self.status[f"{plural}/{name}"] = body["status"]


class FakeEvents:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str, str]] = []

    async def post(self, ref: ObjectRef, reason: str, message: str) -> bool:
        self.posted.append((ref.name, reason, message))
        return True


def service(name: str, created: str) -> tuple[Any, ObjectRef]:
    body = {"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"]}}
    return parse_lb_service(body), ObjectRef("v1", "Service", "default", name, f"uid-{name}")


def test_sync_writes_status_events_and_corefile_and_survives_a_refused_write() -> None:
    core, custom, events = FakeCore(refuse={"gone"}), FakeCustom(), FakeEvents()
    controller = Controller(kubernetes.client.Configuration(), events, Metrics(),  # type: ignore[arg-type]
                            Peering("", "me", 1), ("kube-system", "coredns"), Periods(), now=lambda: NOW)
    controller.core, controller.custom = core, custom  # type: ignore[assignment]
    pool = {"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1},
            "spec": {"ranges": [{"start": "172.30.1.128", "end": "172.30.1.129"}]}, "status": {}}
    dns = {"metadata": {"name": "default", "generation": 2}, "spec": {"ttl": 7}, "status": {}}
    controller.attach(
        services={("default", n): [service(n, f"2026-01-01T00:00:0{i}Z")] for i, n in enumerate(("gone", "a", "b"))},
        pools={"p": [pool]}, namespaces={"default": [("default", {})]}, dnsconfigs={"default": [dns]})
    asyncio.run(controller.sync())
    assert core.patched == {"default/a": {"status": {"loadBalancer": {"ingress": [
        {"ip": "172.30.1.129", "ipMode": "VIP"}]}}}}, "gone was refused; a still got its address"
    assert events.posted and events.posted[0][:2] == ("b", "AllocationFailed")
    assert custom.status["loadbalancerippools/p"]["allocated"] == 2
    assert "ttl 7" in core.corefile
    ready = custom.status["dnsconfigs/default"]["conditions"][0]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "Applied", 2)
    assert controller.metrics.errors._value.get() == 1
