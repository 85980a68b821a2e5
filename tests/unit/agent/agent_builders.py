"""API objects and models for the agent's unit tests."""

from __future__ import annotations

from typing import Any

from operators.proxy.model import ProxyModel
from operators.proxy.offline import model_from_objects
from operators.runtime.store import ObjectRef

NODE_NAME = "node-a"


def service(name: str = "dns", ip: str = "10.96.0.10", protocol: str = "UDP", port: int = 53, **spec: Any) -> dict:
    spec.setdefault("ports", [{"name": "p", "port": port, "protocol": protocol, "targetPort": port}])
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"clusterIPs": [ip], **spec}}


def endpoint_slice(service: str = "dns", *ips: str, port: int = 53, protocol: str = "UDP",
                   annotations: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-1", "namespace": "default", "uid": f"uid-{service}-1",
                         "labels": {"kubernetes.io/service-name": service}, "annotations": annotations or {}},
            "addressType": "IPv4", "ports": [{"name": "p", "port": port, "protocol": protocol}],
            "endpoints": [{"addresses": [ip], "nodeName": "node-b", "conditions": {"ready": True}} for ip in ips]}


NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE_NAME, "uid": "uid-node"},
        "spec": {"podCIDRs": ["10.244.1.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.30.9.11"}]}}


def model(*objects: dict[str, Any]) -> ProxyModel:
    """The node's model, externalIPs allowed in 172.30.0.0/16."""
    built, _ = model_from_objects([*objects, NODE], NODE_NAME, {"externalIPRanges": ["172.30.0.0/16"]})
    return built


class Recorder:
    """The Events a side posted, as (ref, reason, message); with `fail` set, every post fails."""

    def __init__(self) -> None:
        self.posted: list[tuple[ObjectRef, str, str]] = []
        self.fail = False

    async def post(self, ref: ObjectRef, reason: str, message: str) -> bool:
        if not self.fail:
            self.posted.append((ref, reason, message))
        return not self.fail
