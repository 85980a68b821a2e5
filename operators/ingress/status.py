"""Ingress `status.loadBalancer`: the one write the controller makes, on the Ingresses it serves.

The addresses are the controller Service's LoadBalancer addresses when `KNET_INGRESS_SERVICE` names a
Service that has some, else the addresses nginx is published on (the node's, for a hostNetwork pod).
The status subresource is replaced with the whole object as last seen by the watch (with its
resourceVersion: a conflict is retried at the next sync), because the Ingress status strategy keeps
the stored spec but takes metadata from the request, so a partial object would wipe labels and
annotations. The controller needs `update` on `ingresses/status` and nothing else; an Ingress whose
status already says the same is not written. Without that permission (the chart leaves status to
`knet controller`), the first 403 turns status writing off.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from operators.ingress.api_writes import ApiWriter
from operators.ingress.metrics import Metrics
from operators.kube.client import Client, api_path

log = logging.getLogger(__name__)


def lb_addresses(body: Mapping[str, Any]) -> tuple[str, ...]:
    """The IPs (or host names) in an object's `status.loadBalancer.ingress`, in order."""
    items = ((body.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(str(i.get("ip") or i.get("hostname")) for i in items if isinstance(i, Mapping)
                 and (i.get("ip") or i.get("hostname")))


def status_body(seen: Mapping[str, Any], addresses: Iterable[str]) -> dict[str, Any]:
    """The Ingress as seen, with our addresses as its status (managedFields left to the server)."""
    ingress = []
    for a in addresses:
        try:
            ingress.append({"ip": str(ipaddress.ip_address(a))})
        except ValueError:
            ingress.append({"hostname": a})
    metadata = {k: v for k, v in (seen.get("metadata") or {}).items() if k != "managedFields"}
    return {**seen, "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata,
            "status": {"loadBalancer": {"ingress": ingress}}}


class StatusWriter(ApiWriter):
    given_up = "leaving Ingress status to others"

    def __init__(self, client: Client | None, metrics: Metrics, publish: tuple[str, ...], service: str = "") -> None:
        super().__init__(client, metrics)
        self.publish = publish
        self.service = service  # namespace/name of the controller's Service, "" for none

    def addresses(self, service_lb: Mapping[tuple[str, str], tuple[str, ...]]) -> tuple[str, ...]:
        """The controller Service's load-balancer addresses when it has some, else the published ones."""
        if self.service:
            ns, _, name = self.service.partition("/")
            if found := service_lb.get((ns, name)):
                return tuple(found)
        return self.publish

    async def update(self, ours: Iterable[str],
                     ingress_lb: Mapping[tuple[str, str], tuple[tuple[str, ...], dict[str, Any]]],
                     service_lb: Mapping[tuple[str, str], tuple[str, ...]]) -> None:
        """Write the addresses into every served Ingress whose status differs (`ingress_lb`: each Ingress's
        addresses and the object as last seen)."""
        want = self.addresses(service_lb)
        if self.api is None or not want:
            return
        for key in ours:
            ns, name = key.split("/", 1)
            have, seen = ingress_lb.get((ns, name), ((), None))
            if seen is None or tuple(have) == want:
                continue
            path = api_path("networking.k8s.io/v1", "ingresses", ns, name, subresource="status")
            # every failure counts, a 404 and a 409 too: the next sync writes again from what the watch shows
            if await self.write_one("PUT", path, status_body(seen, want), "application/json",
                                    f"update of the status of Ingress {key}", skip=()):
                log.info("Ingress %s: status.loadBalancer = %s", key, ", ".join(want))
            if self.api is None:
                return
