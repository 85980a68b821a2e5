"""The sync shell against fake API clients: what it writes, and that one refused write stops nothing else."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from operators.controller.controller import Controller, Metrics, Peering, Views
from operators.controller.pools import parse_lb_service
from operators.kube.client import ApiError
from operators.runtime.schedule import Periods
from operators.runtime.store import ObjectRef

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class FakeApi:
    """The API paths the controller writes: a refused Service status, one ConfigMap with its Corefile."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.patched: dict[str, Any] = {}
        self.corefile = "old"

    async def request(self, method: str, path: str, body: Any = None, *_: Any, **__: Any) -> Any:
        if path.endswith("/configmaps/coredns"):
            if method == "PATCH":
                self.corefile = body["data"]["Corefile"]
            return {"data": {"Corefile": self.corefile}}
        if any(f"/services/{name}/" in path for name in self.refuse):
            raise ApiError(404, "Not Found")
        self.patched[path] = body
        return body


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
    api, events = FakeApi(refuse={"gone"}), FakeEvents()
    controller = Controller(api, events, Metrics(),  # type: ignore[arg-type]
                            Peering("", "me", 1), ("kube-system", "coredns"), Periods(), now=lambda: NOW)
    pool = {"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1},
            "spec": {"ranges": [{"start": "172.30.1.128", "end": "172.30.1.129"}]}, "status": {}}
    dns = {"metadata": {"name": "default", "generation": 2}, "spec": {"ttl": 7}, "status": {}}
    controller.attach(Views(
        services=[service(n, f"2026-01-01T00:00:0{i}Z") for i, n in enumerate(("gone", "a", "b"))],
        pools=[pool], namespaces=[("default", {})], dnsconfigs=[dns]))
    asyncio.run(controller.sync())
    services = {path: body for path, body in api.patched.items() if "/services/" in path}
    assert services == {"/api/v1/namespaces/default/services/a/status": {"status": {"loadBalancer": {"ingress": [
        {"ip": "172.30.1.129", "ipMode": "VIP"}]}}}}, "gone was refused; a still got its address"
    assert events.posted and events.posted[0][:2] == ("b", "AllocationFailed")
    assert api.patched["/apis/knet.io/v1alpha1/loadbalancerippools/p/status"]["status"]["allocated"] == 2
    assert "ttl 7" in api.corefile
    ready = api.patched["/apis/knet.io/v1alpha1/dnsconfigs/default/status"]["status"]["conditions"][0]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "Applied", 2)
    assert controller.metrics.errors._value.get() == 1
