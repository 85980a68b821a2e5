"""Writes the Gateway API status patches the pure decision (`operators.gateway.status`) asks for.

Each patch is a merge patch of the status subresource that names the resourceVersion it was computed from,
so a conflict (another ingress replica, or a user, wrote first) is left for the next sync, which computes
again from the newer object. A 404 means the object went away; a 403 turns writing off (a chart without the
grant leaves Gateway status to someone else).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import kubernetes

from operators.gateway.status import StatusPatch
from operators.ingress.metrics import Metrics

log = logging.getLogger(__name__)
GROUP, VERSION = "gateway.networking.k8s.io", "v1"


class GatewayStatusWriter:
    def __init__(self, configuration: kubernetes.client.Configuration | None, metrics: Metrics) -> None:
        self.api = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration)) \
            if configuration else None
        self.metrics = metrics

    def _send(self, p: StatusPatch) -> None:
        assert self.api is not None
        body = dict(p.body)
        if p.kind == "GatewayClass":
            self.api.patch_cluster_custom_object_status(GROUP, VERSION, "gatewayclasses", p.name, body,
                                                        _request_timeout=10)
        elif p.kind == "Gateway":
            self.api.patch_namespaced_custom_object_status(GROUP, VERSION, p.namespace, "gateways", p.name, body,
                                                           _request_timeout=10)
        else:
            self.api.patch_namespaced_custom_object_status(GROUP, VERSION, p.namespace, "httproutes", p.name, body,
                                                           _request_timeout=10)

    async def write(self, patches: Iterable[StatusPatch]) -> None:
        for p in patches:
            if self.api is None:
                return
            what = f"{p.kind} {p.namespace + '/' if p.namespace else ''}{p.name}"
            try:
                await asyncio.to_thread(self._send, p)
                log.info("%s: status written", what)
            except kubernetes.client.ApiException as e:
                if e.status == 403:
                    log.warning("no permission to write %s status (%s): leaving Gateway status to others", what,
                                e.reason)
                    self.api = None
                elif e.status not in (404, 409):
                    log.warning("could not write the status of %s: %s", what, e.reason)
                    self.metrics.errors.labels("status").inc()
            except Exception as e:  # noqa: BLE001 - retried at the next sync
                log.warning("could not write the status of %s: %s", what, e)
                self.metrics.errors.labels("status").inc()
