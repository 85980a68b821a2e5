"""Writes each Gateway's own LoadBalancer Service and its EndpointSlices, as `operators.gateway.services`
decides: creates, merge patches of what knet manages, deletes of knet's objects no longer wanted.

A 409 on create (a Service of that name that is someone else's, or another replica first) and a 404 (gone
meanwhile) are left to the next sync, which decides again from what the watch shows. A 403 turns writing off:
the chart grants these writes, and without them Gateways stay on no address of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from operators.gateway.services import Change
from operators.ingress.api_writes import ApiWriter
from operators.kube.client import MERGE_PATCH, api_path

log = logging.getLogger(__name__)
# One path per kind, so that the chart's RBAC test sees what is written.
PATHS: dict[str, Callable[[str, str], str]] = {
    "Service": lambda ns, name: api_path("v1", "services", ns, name),
    "EndpointSlice": lambda ns, name: api_path("discovery.k8s.io/v1", "endpointslices", ns, name),
}
METHODS = {"create": "POST", "patch": "PATCH", "delete": "DELETE"}
DONE_AS = {"create": "created", "patch": "patched", "delete": "deleted"}


class GatewayServiceWriter(ApiWriter):
    error_kind = "gateway-service"
    given_up = "leaving Gateway Services to others: Gateways get no address of their own"

    async def write(self, changes: Iterable[Change]) -> None:
        for c in changes:
            if self.api is None:
                return
            what = f"{c.kind} {c.namespace}/{c.name}"
            path = PATHS[c.kind](c.namespace, "" if c.verb == "create" else c.name)
            if await self.write_one(METHODS[c.verb], path, c.body,
                                    MERGE_PATCH if c.verb == "patch" else "application/json", f"{c.verb} of {what}"):
                log.info("%s %s", what, DONE_AS[c.verb])
