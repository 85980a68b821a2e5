"""When a stopping agent removes its rules: only when its DaemonSet is gone or being deleted, read at
stop or seen by the agent's watch before; never on a refused read alone (operators/agent/uninstall.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from operators.agent import uninstall
from operators.kube.client import ApiError, Client
from operators.runtime.login import Credentials

API = Credentials(server="https://192.0.2.1:6443")


def answer(monkeypatch: pytest.MonkeyPatch, result: Any) -> list[tuple[str, str]]:
    asked: list[tuple[str, str]] = []

    async def request(self: Client, method: str, path: str, *_: Any, **__: Any) -> Any:
        asked.append((method, path))
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(Client, "request", request)
    return asked


BEING_DELETED = {"metadata": {"name": "knet-agent", "deletionTimestamp": "2026-01-01T00:00:00Z"}}
THERE = {"metadata": {"name": "knet-agent"}}


@pytest.mark.parametrize(("result", "read"), [
    (THERE, (200, False)), (BEING_DELETED, (200, True)),
    (ApiError(404, "not found"), (404, False)),
    (ApiError(403, "forbidden"), (403, False)),
    (aiohttp.ClientConnectionError(), (None, False)),  # the API server cannot be reached
    (ConnectionRefusedError(), (None, False)),
    (TimeoutError(), (None, False)),
])
def test_read_daemonset(monkeypatch: pytest.MonkeyPatch, result: Any, read: tuple[int | None, bool]) -> None:
    asked = answer(monkeypatch, result)
    assert asyncio.run(uninstall.read_daemonset(API, "knet-system/knet-agent")) == read
    assert asked == [("GET", "/apis/apps/v1/namespaces/knet-system/daemonsets/knet-agent")]


@pytest.mark.parametrize("status", [401, 403, 500, None])
def test_an_auth_failure_or_silence_alone_is_no_uninstall(status: int | None) -> None:
    assert uninstall.decide(status, False, uninstall.PRESENT) == ""
    assert uninstall.decide(status, False, uninstall.UNKNOWN) == ""


@pytest.mark.parametrize("status", [401, 403, None])
def test_refused_after_the_watch_saw_the_daemonset_deleted_is_an_uninstall(status: int | None) -> None:
    assert uninstall.decide(status, False, uninstall.DELETING)  # helm uninstall: DaemonSet, then RBAC
    assert uninstall.decide(status, False, uninstall.GONE)


def test_the_daemonset_itself_decides_when_it_can_be_read() -> None:
    assert uninstall.decide(404, False, uninstall.PRESENT) and uninstall.decide(200, True, uninstall.PRESENT)
    assert uninstall.decide(200, False, uninstall.GONE) == ""  # deleted and installed again


def test_the_watch_follows_the_daemonset() -> None:
    watch = uninstall.DaemonSetWatch("knet-system/knet-agent")
    assert watch.resource.path == "/apis/apps/v1/namespaces/knet-system/daemonsets"
    assert watch.resource.field_selector == "metadata.name=knet-agent" and watch.state == uninstall.UNKNOWN
    watch.handle("ADDED", {"metadata": {"name": "knet-agent"}})
    assert watch.state == uninstall.PRESENT
    watch.handle("MODIFIED", {"metadata": {"name": "knet-agent", "deletionTimestamp": "2026-01-01T00:00:00Z"}})
    assert watch.state == uninstall.DELETING
    watch.handle("DELETED", {"metadata": {"name": "knet-agent"}})
    assert watch.state == uninstall.GONE


async def never(*_: Any) -> list[str]:
    raise AssertionError("rules removed, but knet was not uninstalled")


def test_kept_rules_when_daemonset_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    answer(monkeypatch, THERE)
    monkeypatch.setattr(uninstall, "remove_rules", never)
    uninstall.after_stop(API, "knet-system/knet-agent")


@pytest.mark.parametrize("status", [401, 403])
def test_an_auth_hiccup_at_stop_keeps_the_rules(monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    answer(monkeypatch, ApiError(status, "refused"))
    monkeypatch.setattr(uninstall, "remove_rules", never)
    uninstall.after_stop(API, "knet-system/knet-agent", uninstall.PRESENT)
