"""A component's informers, and the rule that no sync hears of a change before every one of them listed
its kind in full (a half-listed cluster would look like one where the rest was deleted)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from operators.kube import informer
from operators.kube.client import Client
from operators.kube.informer import Index, Resource


class Watches:
    def __init__(self, client: Client, changed: Callable[[], None]) -> None:
        self.client = client
        self.changed = changed  # told of every change once all is listed, and once when it is
        self.informers: list[informer.Informer] = []
        self.listed = False

    def watch(self, resource: Resource, *indexes: Index, optional: bool = False) -> None:
        """One informer of `resource` feeding each of `indexes` (views of the same objects kept apart);
        `optional`: a kind the API server may not serve (its CRD not installed) counts as listed and empty."""
        for index in indexes:
            index.changed = self.tell

        def handle(kind: str, obj: Mapping[str, Any]) -> None:
            for index in indexes:
                index.handle(kind, obj)

        self.informers.append(informer.Informer(self.client, resource, handle, optional=optional))

    def index(self, resource: Resource, parse: Callable[[Mapping[str, Any]], Any],
              key: Callable[[Mapping[str, Any]], Hashable] | None = None, optional: bool = False) -> Index:
        """An index of `resource`'s views (by uid, or by `key`), fed by an informer of its own."""
        index = Index(parse, key=key)
        self.watch(resource, index, optional=optional)
        return index

    def tell(self, *_: Any) -> None:
        if self.listed:
            self.changed()

    async def run(self) -> None:
        tasks = [asyncio.create_task(i.run(), name=f"informer {i.name}") for i in self.informers]
        try:
            await asyncio.gather(*(i.listed.wait() for i in self.informers))
            self.listed = True
            self.changed()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
