"""When a stopping agent removes its rules: only when its DaemonSet is gone or the installation's
credentials are (operators/agent/uninstall.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kubernetes
import pytest
import urllib3

from operators.agent import uninstall


def answer(monkeypatch: pytest.MonkeyPatch, result: Any) -> list[tuple[str, str]]:
    asked: list[tuple[str, str]] = []

    def read(self: Any, name: str, namespace: str, **_: Any) -> Any:
        asked.append((namespace, name))
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(kubernetes.client.AppsV1Api, "read_namespaced_daemon_set", read)
    return asked


@pytest.mark.parametrize(("result", "removed"), [
    (SimpleNamespace(metadata=SimpleNamespace(deletion_timestamp=None)), False),  # a restart or rolling update
    (SimpleNamespace(metadata=SimpleNamespace(deletion_timestamp="2026-01-01T00:00:00Z")), True),
    (kubernetes.client.ApiException(status=404), True),
    (kubernetes.client.ApiException(status=401), True),  # the ServiceAccount was deleted
    (kubernetes.client.ApiException(status=403), True),  # the RBAC was deleted
    (kubernetes.client.ApiException(status=500), False),
    (kubernetes.client.ApiException(status=503), False),
    (urllib3.exceptions.MaxRetryError(None, "/"), False),  # the API server cannot be reached: keep the rules
    (ConnectionRefusedError(), False),
])
def test_installation_removed(monkeypatch: pytest.MonkeyPatch, result: Any, removed: bool) -> None:
    asked = answer(monkeypatch, result)
    why = uninstall.installation_removed(kubernetes.client.Configuration(), "knet-system/knet-agent")
    assert bool(why) is removed, why
    assert asked == [("knet-system", "knet-agent")]


def test_kept_rules_when_daemonset_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    answer(monkeypatch, SimpleNamespace(metadata=SimpleNamespace(deletion_timestamp=None)))

    async def never() -> list[str]:
        raise AssertionError("rules removed on a restart")

    monkeypatch.setattr(uninstall, "remove_rules", never)
    uninstall.after_stop(kubernetes.client.Configuration(), "knet-system/knet-agent")
