"""List-then-watch of one resource kind, as client-go's informers do, for the read-only watchers.

Why not Kopf for these: Kopf gives every object its own worker and, during the initial listing of an
indexed resource, every worker drops a toggle and waits on one shared condition, so each listed object
wakes all the others (quadratic: 1k Services took minutes, 10k would take hours). An informer lists the
kind in pages, hands each object to its handler at once, then watches from the list's resourceVersion
(with bookmarks), so starting is linear in the number of objects. Kopf keeps the operators' lifecycle
and their small watches.

What it guarantees:
- `listed` is set once the first complete listing was handed over;
- a watch that ends is resumed from the last resourceVersion seen; one that is too old (410 Gone) is
  replaced by a fresh listing, and objects that vanished meanwhile are handed over as DELETED, so no
  deletion is lost;
- API errors and a lost API server are retried forever with a backoff; what was handed over stays;
- an `optional` kind whose resource the API server does not serve (its CRD is not installed: 404)
  counts as listed and empty, and is looked for again every ABSENT_RETRY seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from operators.kube import client as api
from operators.kube.client import WATCH_TIMEOUT, Client, Gone

log = logging.getLogger(__name__)

PAGE = 500  # objects per list request, as client-go's pager
ABSENT_RETRY = 30.0  # seconds between two looks for an optional kind that is not served

Handler = Callable[[str, Mapping[str, Any]], None]  # (ADDED | MODIFIED | DELETED, object)


@dataclass(frozen=True)
class Resource:
    """Where a kind is listed, and which of its objects: `api` is "v1" or "group/version"."""

    api: str
    plural: str
    label_selector: str = ""
    field_selector: str = ""

    @property
    def path(self) -> str:
        return f"/api/{self.api}/{self.plural}" if "/" not in self.api else f"/apis/{self.api}/{self.plural}"

    def query(self, **extra: str) -> dict[str, str]:
        selectors = {"labelSelector": self.label_selector, "fieldSelector": self.field_selector}
        return {k: v for k, v in {**selectors, **extra}.items() if v}


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _tombstone(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of a handed-over object to hand it over as DELETED if a listing misses it."""
    md = _meta(obj)
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
            "metadata": {k: md[k] for k in ("namespace", "name", "uid", "resourceVersion") if k in md}}


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The watch stream's JSON lines, of any length (aiohttp's readline stops at 64 KiB)."""
    buffer = b""
    async for chunk in response.content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield line


class Informer:
    """Hands every object of one `Resource` to `handle`, then every change, until cancelled."""

    def __init__(self, client: Client, resource: Resource, handle: Handler, name: str = "",
                 optional: bool = False) -> None:
        self.client = client
        self.optional = optional
        self.resource = resource
        self.handle = handle
        self.name = name or resource.plural
        self.known: dict[str, dict[str, Any]] = {}  # uid -> tombstone of every object handed over
        self.version = ""  # the resourceVersion to watch from
        self.listed = asyncio.Event()

    async def run(self) -> None:
        delays = api.delays()
        while True:
            try:
                if not self.version:
                    await self.list()
                await self.watch()
                delays = api.delays()
            except Gone:
                log.info("%s: watch too old, listing again", self.name)
                self.version = ""
            except aiohttp.ClientResponseError as e:
                if not (self.optional and e.status == 404):
                    delay = next(delays)
                    log.warning("%s: %s; retrying in %.0f s", self.name, e, delay)
                    await asyncio.sleep(delay)
                    continue
                self.absent()
                await asyncio.sleep(ABSENT_RETRY)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
                delay = next(delays)
                log.warning("%s: %s; retrying in %.0f s", self.name, e or type(e).__name__, delay)
                await asyncio.sleep(delay)

    async def list(self) -> None:
        """One complete listing in pages; objects missing from it since the last one are DELETED."""
        seen: set[str] = set()
        token, version = "", ""
        while True:
            response = await self.client.get(self.resource.path, self.resource.query(
                limit=str(PAGE), **({"continue": token} if token else {})), WATCH_TIMEOUT)
            async with response:
                page = await response.json(loads=json.loads)
            kind = str(page.get("kind", "")).removesuffix("List")
            for obj in page.get("items") or ():
                obj.setdefault("kind", kind)
                obj.setdefault("apiVersion", page.get("apiVersion"))
                seen.add(self._handle("ADDED", obj))
            version = version or str(_meta(page).get("resourceVersion") or "")
            token = str(_meta(page).get("continue") or "")
            if not token:
                break
        for uid in [u for u in self.known if u not in seen]:
            self.handle("DELETED", self.known.pop(uid))
        self.version = version
        self.listed.set()

    def absent(self) -> None:
        """The kind is not served: whatever was handed over is DELETED, and the (empty) listing is done."""
        for uid in list(self.known):
            self.handle("DELETED", self.known.pop(uid))
        self.version = ""
        self.listed.set()

    async def watch(self) -> None:
        """Changes from `version` on, until the API server ends the watch (then the caller resumes)."""
        params = self.resource.query(watch="1", allowWatchBookmarks="true", resourceVersion=self.version,
                                     timeoutSeconds=str(WATCH_TIMEOUT))
        response = await self.client.get(self.resource.path, params, WATCH_TIMEOUT + 30)
        async with response:
            async for line in _lines(response):
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone(self.resource.path)
                    raise ValueError(f"watch error: {obj.get('message')}")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._handle(kind, obj)
                self.version = str(_meta(obj).get("resourceVersion") or self.version)

    def _handle(self, kind: str, obj: Mapping[str, Any]) -> str:
        uid = str(_meta(obj).get("uid") or "")
        if kind == "DELETED":
            self.known.pop(uid, None)
            self.handle(kind, obj)
            return uid
        old = self.known.get(uid)
        if old is not None and old["metadata"].get("resourceVersion") == _meta(obj).get("resourceVersion"):
            return uid  # a relisting of an unchanged object
        self.known[uid] = _tombstone(obj)
        self.handle("MODIFIED" if old is not None else "ADDED", obj)
        return uid


class Index:
    """Parsed views of one kind by uid, fed by an `Informer`: iterating gives the current views.

    `replaced(key, old, new)` hears of every view that changes (None: there was none, or there is none
    any more), so that a store can keep its own indices and collect which keys changed; `changed` is
    the notice that something did."""

    def __init__(self, parse: Callable[[Mapping[str, Any]], Any],
                 changed: Callable[[str, Mapping[str, Any]], None] | None = None,
                 key: Callable[[Mapping[str, Any]], Hashable] | None = None,
                 replaced: Callable[[Hashable, Any, Any], None] | None = None) -> None:
        self.parse = parse
        self.changed = changed
        self.replaced = replaced
        self.key = key or (lambda obj: str(_meta(obj).get("uid") or ""))  # by uid unless told otherwise
        self.entries: dict[Hashable, Any] = {}

    def handle(self, kind: str, obj: Mapping[str, Any]) -> None:
        """Keep the new view; tell `changed` unless the view equals the one kept (a change of nothing
        the view holds: a Node's heartbeat, a Pod's conditions). Then the kept view stays the very same
        object and no sync runs for it: a sync resets the minimum sync period, which would hold back the
        next real change (as kube-proxy, which syncs on a Node update only when its labels changed)."""
        key = self.key(obj)
        old = self.entries.get(key)
        if kind == "DELETED":
            view = None
            self.entries.pop(key, None)
        else:
            view = self.parse(obj)
            if kind == "MODIFIED" and old == view:
                return
            self.entries[key] = view
        if self.replaced is not None and (old is not None or view is not None):
            self.replaced(key, old, view)
        if self.changed is not None:
            self.changed(kind, obj)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.entries.values())
