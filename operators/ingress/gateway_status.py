"""Writes the Gateway API status patches the pure decision (`operators.gateway.status`) asks for.

Each patch is a merge patch of the status subresource that names the resourceVersion it was computed from,
so a conflict (another ingress replica, or a user, wrote first) is left for the next sync, which computes
again from the newer object. A 404 means the object went away; a 403 turns writing off (a chart without the
grant leaves Gateway status to someone else).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from operators.gateway.status import StatusPatch
from operators.ingress.api_writes import ApiWriter
from operators.kube.client import MERGE_PATCH, api_path

log = logging.getLogger(__name__)
API = "gateway.networking.k8s.io/v1"
# One call per kind, so that the chart's RBAC test sees which status each writes.
STATUS_PATH: dict[str, Callable[[StatusPatch], str]] = {
    "GatewayClass": lambda p: api_path(API, "gatewayclasses", name=p.name, subresource="status"),
    "Gateway": lambda p: api_path(API, "gateways", p.namespace, p.name, subresource="status"),
    "HTTPRoute": lambda p: api_path(API, "httproutes", p.namespace, p.name, subresource="status"),
}


class GatewayStatusWriter(ApiWriter):
    given_up = "leaving Gateway status to others"

    async def write(self, patches: Iterable[StatusPatch]) -> None:
        for p in patches:
            if self.api is None:
                return
            what = f"{p.kind} {p.namespace + '/' if p.namespace else ''}{p.name}"
            if await self.write_one("PATCH", STATUS_PATH[p.kind](p), p.body, MERGE_PATCH,
                                    f"writing the status of {what}"):
                log.info("%s: status written", what)
