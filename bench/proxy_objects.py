"""Many Services with 10 endpoints each, written fast: selector-less Services and their EndpointSlices
posted directly (no pods; the proxies only read the slices), by threads sharing one API client.

`Objects.grow(n)` tops the namespace up to n Services, so the sizes of one run build on each other.
The probe Service points at the bench node's real backend; `point_probe` moves it between the two
backend ports, stamping the slice with the trigger-time annotation as the EndpointSlice controller does
(so both proxies report their network-programming latency for it).
"""

from __future__ import annotations

import datetime
from concurrent.futures import ThreadPoolExecutor

import kubernetes

from operators.kube.services import SERVICE_NAME_LABEL

NAMESPACE = "bench-proxy"
TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"
ENDPOINTS = 10
THREADS = 16


def _service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _slice(service: str, addresses: list[str], port: int, node: str) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-1", "labels": {SERVICE_NAME_LABEL: service},
                         "annotations": {TRIGGER: _now()}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "nodeName": node, "conditions": {"ready": True}} for a in addresses]}


def _addresses(i: int) -> list[str]:
    """10 distinct fake pod addresses per Service, in 10.245.0.0/16+ (no namespace owns them)."""
    return [f"10.{245 + (i * ENDPOINTS + j) // 65536}.{(i * ENDPOINTS + j) // 256 % 256}.{(i * ENDPOINTS + j) % 256}"
            for j in range(ENDPOINTS)]


class Objects:
    def __init__(self, kubeconfig: str, node: str) -> None:
        self.api = kubernetes.config.new_client_from_config(config_file=kubeconfig)
        self.api.configuration.connection_pool_maxsize = THREADS
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.discovery = kubernetes.client.DiscoveryV1Api(self.api)
        self.node = node
        self.cluster_ips: dict[str, str] = {}  # Service name -> ClusterIP

    def setup(self) -> None:
        """The namespace, and the Services an earlier (killed) run left in it."""
        try:
            self.core.create_namespace({"metadata": {"name": NAMESPACE}})
        except kubernetes.client.ApiException as e:
            if e.status != 409:
                raise
        for svc in self.core.list_namespaced_service(NAMESPACE).items:
            self.cluster_ips[svc.metadata.name] = svc.spec.cluster_ip

    def _create(self, name: str, addresses: list[str], port: int = 8080) -> None:
        svc = self.core.create_namespaced_service(NAMESPACE, _service(name))
        self.discovery.create_namespaced_endpoint_slice(NAMESPACE, _slice(name, addresses, port, self.node))
        self.cluster_ips[name] = svc.spec.cluster_ip

    def grow(self, n: int) -> None:
        """Create Services s<i> (with their slices) until there are n of them."""
        todo = [i for i in range(n) if f"s{i}" not in self.cluster_ips]
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda i: self._create(f"s{i}", _addresses(i)), todo))

    def probe(self, backend_ip: str) -> str:
        """The probe Service (its slice on the backend's port 8080); its ClusterIP."""
        if "probe" not in self.cluster_ips:
            self._create("probe", [backend_ip])
        self.point_probe(8080)
        return self.cluster_ips["probe"]

    def point_probe(self, port: int) -> None:
        """Move the probe's endpoint to another backend port (a merge patch: one request)."""
        self.discovery.patch_namespaced_endpoint_slice("probe-1", NAMESPACE, {
            "metadata": {"annotations": {TRIGGER: _now()}},
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]})

    def delete(self) -> None:
        self.core.delete_namespace(NAMESPACE)
