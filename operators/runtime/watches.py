"""A component's informers, and the rule that no sync hears of a change before every one of them listed
its kind in full (a half-listed cluster would look like one where the rest was deleted)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
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

    def index(self, resource: Resource, parse: Callable[[Mapping[str, Any]], Any]) -> Index:
        """An index of `resource`'s views, fed by an informer of its own."""
        index = Index(parse, self.tell)
        self.informers.append(informer.Informer(self.client, resource, index.handle))
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
