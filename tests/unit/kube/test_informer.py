"""The informer against a small fake API server (aiohttp): paged listing, watch resumption, 410 Gone
with a relisting that hands over the deletions it missed, bookmarks, long lines and API errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from operators.kube import client as client_module
from operators.kube import informer
from operators.kube.client import Client
from operators.kube.informer import Index, Informer, Resource
from operators.runtime.login import Credentials


class FakeAPI:
    """Services in one namespace with a resourceVersion counter; a watch streams the changes after its
    resourceVersion, and answers 410 for one older than `compacted`."""

    def __init__(self) -> None:
        self.rv = 0
        self.objects: dict[str, dict[str, Any]] = {}
        self.changes: list[tuple[int, str, dict[str, Any]]] = []
        self.compacted = 0
        self.lists: list[dict[str, str]] = []
        self.watches: list[str] = []
        self.fail_next = 0  # answer that many requests with 500
        self.end_after = 0  # close a watch after that many events (0: keep it open)
        self.bookmark = False
        self.changed = asyncio.Condition()

    async def put(self, name: str, kind: str = "MODIFIED", **spec: Any) -> None:
        self.rv += 1
        if kind == "DELETED":
            obj = self.objects.pop(name)
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        else:
            obj = {"metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}", "resourceVersion": str(self.rv)},
                   "spec": spec}
            self.objects[name] = obj
        self.changes.append((self.rv, kind, {"kind": "Service", "apiVersion": "v1", **obj}))
        async with self.changed:
            self.changed.notify_all()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500, text="etcd is sad")
        q = request.query
        if q.get("watch") != "1":
            self.lists.append(dict(q))
            names = sorted(self.objects)
            start = int(q.get("continue") or 0)
            limit = int(q["limit"])
            page = names[start:start + limit]
            more = start + limit < len(names)
            items = [self.objects[n] for n in page]
            return web.json_response({"kind": "ServiceList", "apiVersion": "v1", "items": items,
                                      "metadata": {"resourceVersion": str(self.rv),
                                                   **({"continue": str(start + limit)} if more else {})}})
        since = int(q["resourceVersion"])
        self.watches.append(q["resourceVersion"])
        if since < self.compacted:
            return web.Response(status=410, text="too old")
        response = web.StreamResponse()
        await response.prepare(request)
        sent = 0
        while True:
            for rv, kind, obj in [c for c in self.changes if c[0] > since]:
                await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                since, sent = rv, sent + 1
                if self.end_after and sent >= self.end_after:
                    return response
            if self.bookmark:
                self.bookmark = False
                bookmark = {"kind": "Service", "metadata": {"resourceVersion": str(self.rv + 100)}}
                await response.write(json.dumps({"type": "BOOKMARK", "object": bookmark}).encode() + b"\n")
                since = self.rv + 100
            async with self.changed:
                await self.changed.wait()


Run = Callable[[FakeAPI, Callable[[Informer, list[tuple[str, str]]], Awaitable[None]]], None]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Run:
    """Start the fake API and an informer on it, run the scenario, stop both."""
    monkeypatch.setattr(informer, "PAGE", 2)
    monkeypatch.setattr(client_module, "BACKOFFS", (0.01, 0.01, 0.01))

    def go(api: FakeAPI, scenario: Callable[[Informer, list[tuple[str, str]]], Awaitable[None]]) -> None:
        async def main() -> None:
            app = web.Application()
            app.router.add_get("/api/v1/services", api.handle)
            runner = web.AppRunner(app, shutdown_timeout=0.1)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            seen: list[tuple[str, str]] = []
            client = Client(Credentials(server=f"http://127.0.0.1:{port}"))
            inf = Informer(client, Resource("v1", "services"), lambda k, o: seen.append((k, o["metadata"]["name"])))
            task = asyncio.create_task(inf.run())
            try:
                await asyncio.wait_for(scenario(inf, seen), 10)
            finally:
                task.cancel()
                await client.close()
                await runner.cleanup()
        asyncio.run(main())
    return go


async def until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.01)


def test_pages_then_changes(run: Run) -> None:
    api = FakeAPI()

    async def scenario(inf: Informer, seen: list[tuple[str, str]]) -> None:
        for name in "abcde":
            await api.put(name, "ADDED")
        await inf.listed.wait()
        assert sorted(seen) == [("ADDED", n) for n in "abcde"]
        assert len(api.lists) == 3 and api.lists[1]["continue"] == "2"  # five objects in pages of two
        await until(lambda: bool(api.watches))
        assert api.watches == ["5"]
        await api.put("a", port=80)
        await api.put("f", "ADDED")
        await api.put("b", "DELETED")
        await until(lambda: len(seen) == 8)
        assert seen[5:] == [("MODIFIED", "a"), ("ADDED", "f"), ("DELETED", "b")]
        assert set(inf.known) == {f"uid-{n}" for n in "acdef"}

    run(api, scenario)


def test_a_watch_that_ends_resumes_where_it_was(run: Run) -> None:
    api = FakeAPI()
    api.end_after = 1

    async def scenario(inf: Informer, seen: list[tuple[str, str]]) -> None:
        await inf.listed.wait()
        for name in "xyz":
            await api.put(name, "ADDED")
        await until(lambda: len(seen) == 3)
        await asyncio.sleep(0.05)
        assert seen == [("ADDED", "x"), ("ADDED", "y"), ("ADDED", "z")]  # no repeats, none missed
        assert api.watches[:3] == ["0", "1", "2"]
        assert len(api.lists) == 1

    run(api, scenario)


def test_gone_relists_and_hands_over_missed_deletions(run: Run) -> None:
    api = FakeAPI()
    api.end_after = 1

    async def scenario(inf: Informer, seen: list[tuple[str, str]]) -> None:
        for name in "abc":
            await api.put(name, "ADDED")
        await inf.listed.wait()
        api.end_after = 0
        api.compacted = 10 ** 6  # every watch from now on is too old
        await api.put("b", "DELETED")  # only a relisting can tell
        await api.put("c", port=81)
        await until(lambda: len(api.lists) >= 2 and inf.listed.is_set() and ("DELETED", "b") in seen)
        api.compacted = 0
        await until(lambda: ("MODIFIED", "c") in seen)
        assert ("MODIFIED", "a") not in seen  # unchanged objects are not handed over again
        assert set(inf.known) == {"uid-a", "uid-c"}

    run(api, scenario)


def test_bookmarks_move_the_version_without_an_event(run: Run) -> None:
    api = FakeAPI()

    async def scenario(inf: Informer, seen: list[tuple[str, str]]) -> None:
        await api.put("a", "ADDED")
        await inf.listed.wait()
        api.bookmark = True
        await api.put("b", "ADDED")
        await until(lambda: inf.version == str(api.rv + 100))
        assert seen == [("ADDED", "a"), ("ADDED", "b")]

    run(api, scenario)


def test_long_objects_and_api_errors(run: Run) -> None:
    api = FakeAPI()
    api.fail_next = 2

    async def scenario(inf: Informer, seen: list[tuple[str, str]]) -> None:
        await inf.listed.wait()  # after two 500s
        await api.put("big", "ADDED", blob="x" * 300_000)  # one watch line far over aiohttp's 64 KiB
        await until(lambda: seen == [("ADDED", "big")])

    run(api, scenario)


def test_index_keeps_parsed_views_by_uid() -> None:
    told: list[str] = []
    index = Index(lambda o: o["metadata"]["name"].upper(), lambda kind, _: told.append(kind))
    obj = {"metadata": {"uid": "u1", "name": "a"}}
    index.handle("ADDED", obj)
    index.handle("MODIFIED", {"metadata": {"uid": "u1", "name": "bee"}})
    assert list(index) == ["BEE"]
    kept = index.entries["u1"]
    index.handle("MODIFIED", {"metadata": {"uid": "u1", "name": "bee", "labels": {"x": "y"}}})  # the same view
    assert index.entries["u1"] is kept and told == ["ADDED", "MODIFIED"]
    index.handle("DELETED", obj)
    assert list(index) == [] and told == ["ADDED", "MODIFIED", "DELETED"]


def test_api_errors_carry_the_status_message_as_kubectl_prints_it() -> None:
    forbidden = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                 "message": 'endpointslices.discovery.k8s.io is forbidden: User "u" cannot list resource '
                            '"endpointslices" in API group "discovery.k8s.io" at the cluster scope'}
    assert client_module.status_message(json.dumps(forbidden)) == forbidden["message"]
    assert client_module.status_message("etcd is sad") == "etcd is sad"
    assert client_module.status_message("[1, 2]") == "[1, 2]"


def test_an_optional_kind_that_is_not_served_counts_as_listed_and_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Gateway API kind without its CRD (404): the informer is listed (the component may sync), holds
    nothing, and looks again later; a kind that is not optional keeps retrying and is never listed."""
    monkeypatch.setattr(client_module, "BACKOFFS", (0.01, 0.01, 0.01))

    async def main() -> tuple[bool, bool]:
        runner = web.AppRunner(web.Application(), shutdown_timeout=0.1)  # serves nothing: every path is a 404
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        client = Client(Credentials(server=f"http://127.0.0.1:{port}"))
        seen: list[str] = []
        optional = Informer(client, Resource("gateway.networking.k8s.io/v1", "gateways"),
                            lambda k, o: seen.append(k), optional=True)
        required = Informer(client, Resource("v1", "services"), lambda k, o: seen.append(k))
        tasks = [asyncio.create_task(i.run()) for i in (optional, required)]
        with contextlib.suppress(TimeoutError):  # a loaded machine may take a while; the result says
            await asyncio.wait_for(optional.listed.wait(), 10)
        await asyncio.sleep(0.1)  # the required one's retries go on meanwhile
        for task in tasks:
            task.cancel()
        await client.close()
        await runner.cleanup()
        return optional.listed.is_set() and not seen, required.listed.is_set()

    assert asyncio.run(main()) == (True, False)
