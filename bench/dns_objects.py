"""`bench.dns_data.Cluster`'s Services and EndpointSlices created in a real API server, for the DNS
benchmark's CoreDNS with the kubernetes plugin (and knet dns watching the same server).

As `bench/proxy_objects.py`: selector-less Services and their EndpointSlices posted directly by threads
sharing one API client, so no Pod runs and no controller writes. The slices hold
`Cluster.pod_ip(i, j)` as ready endpoints, so the names asked (Service A and SRV, endpoint PTR, pod A
under `pods insecure`) are the file-plugin bench's, and both servers answer them from what they watch.
The Services' cluster IPs are the API server's choice (another bench may hold addresses), so the
benchmark compares the two servers' answers with each other, not with fixed addresses.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import kubernetes

from bench.dns_data import NAMESPACES, Cluster
from operators.kube.services import SERVICE_NAME_LABEL

THREADS = 16


class DNSObjects:
    def __init__(self, kubeconfig: str, cluster: Cluster) -> None:
        self.api = kubernetes.config.new_client_from_config(config_file=kubeconfig)
        self.api.configuration.connection_pool_maxsize = THREADS
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.discovery = kubernetes.client.DiscoveryV1Api(self.api)
        self.cluster = cluster

    def namespaces(self) -> list[str]:
        return [f"ns-{n}" for n in range(min(NAMESPACES, self.cluster.services))]

    def _create(self, i: int) -> None:
        c, name = self.cluster, f"svc-{i}"
        ns = c.ns(i)
        _created(self.core.create_namespaced_service, ns, {
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}})
        _created(self.discovery.create_namespaced_endpoint_slice, ns, {
            "metadata": {"name": f"{name}-abcde", "labels": {SERVICE_NAME_LABEL: name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [c.pod_ip(i, j)], "conditions": {"ready": True}}
                          for j in range(c.pods_per_service)]})

    def create(self) -> None:
        """Namespaces ns-0.., then every Service with its slice (what a killed run left is kept: the same objects)."""
        for ns in self.namespaces():
            _created(self.core.create_namespace, {"metadata": {"name": ns}})
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(self._create, range(self.cluster.services)))

    def delete(self) -> None:
        for ns in self.namespaces():
            try:
                self.core.delete_namespace(ns)
            except kubernetes.client.ApiException as e:
                if e.status != 404:
                    raise


def _created(create: Callable[..., object], *args: object) -> None:
    """Create, or find it there already (409)."""
    try:
        create(*args)
    except kubernetes.client.ApiException as e:
        if e.status != 409:
            raise
