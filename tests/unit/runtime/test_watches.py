"""A component hears of no change before every informer listed its kind, then of every change."""

from __future__ import annotations

from typing import Any

from operators.kube.client import Client
from operators.kube.informer import Resource
from operators.runtime.login import Credentials
from operators.runtime.watches import Watches


def test_changes_are_told_once_everything_is_listed() -> None:
    told: list[int] = []
    w = Watches(Client(Credentials("https://192.0.2.1:6443")), lambda: told.append(1))
    names = w.index(Resource("v1", "services"), lambda body: body["metadata"]["name"])
    w.index(Resource("v1", "namespaces"), lambda body: body)
    obj: dict[str, Any] = {"metadata": {"uid": "u1", "name": "a"}}
    names.handle("ADDED", obj)
    assert told == [] and list(names) == ["a"] and len(w.informers) == 2
    w.listed = True
    names.handle("MODIFIED", {"metadata": {"uid": "u1", "name": "b"}})
    assert told == [1]
