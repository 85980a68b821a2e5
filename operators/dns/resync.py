"""Prune records of objects deleted while no watch was open.

When a watch breaks (API server restart, expired resource version), Kopf lists again and reports what
exists, but never the objects deleted in between: their records would stay forever. So every
`period` seconds we list the names (metadata only) of each watched kind and delete what the store
holds but the API server no longer has. Objects applied while the listing runs are spared, so a
create racing the list is never pruned.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import kubernetes

from operators.dns.records import Key

log = logging.getLogger("knet.dns")

PERIOD = 300.0
PATHS = {  # kind -> list path, all namespaces
    "Namespace": "/api/v1/namespaces",
    "Service": "/api/v1/services",
    "EndpointSlice": "/apis/discovery.k8s.io/v1/endpointslices",
    "Pod": "/api/v1/pods",
}
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"

Lister = Callable[[str], set[Key]]  # kind -> names the API server has


def api_lister(credentials: kubernetes.client.Configuration) -> Lister:
    """Lists names with the kubernetes client (blocking: call it in a thread)."""
    api = kubernetes.client.ApiClient(credentials)

    def names(kind: str) -> set[Key]:
        request = api.param_serialize("GET", PATHS[kind], header_params={"Accept": METADATA_ONLY},
                                      auth_settings=["BearerToken"])
        items = json.loads(api.call_api(*request, _request_timeout=60).read()).get("items") or []
        return {(i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in items}

    return names


class Pruner:
    """Knows which objects were applied during a listing, and deletes the store's stale ones."""

    def __init__(self, keys: Callable[[str], set[Key]], delete: Callable[[str, Key], None]) -> None:
        self._keys = keys
        self._delete = delete
        self._recent: dict[str, set[Key]] | None = None  # applied since the current listing started

    def applied(self, kind: str, key: Key) -> None:
        if self._recent is not None:
            self._recent.setdefault(kind, set()).add(key)

    async def prune(self, lister: Lister) -> int:
        """One pass over every kind; returns how many stale objects were deleted."""
        pruned = 0
        for kind in PATHS:
            self._recent = {}
            try:
                listed = await asyncio.to_thread(lister, kind)
                stale = self._keys(kind) - listed - self._recent.get(kind, set())
            finally:
                self._recent = None
            for key in sorted(stale):
                log.info("pruning %s %s: deleted while the watch was down", kind, "/".join(filter(None, key)))
                self._delete(kind, key)
            pruned += len(stale)
        return pruned

    async def run(self, lister: Lister, ready: Callable[[], bool], period: float = PERIOD) -> None:
        """Prune every `period` seconds once the store is synced; a failed listing waits for the next turn."""
        while True:
            await asyncio.sleep(period)
            if not ready():
                continue
            try:
                await self.prune(lister)
            except Exception as e:  # noqa: BLE001 - the API server may be away; keep the last good records
                log.warning("resync skipped: %s", e)
