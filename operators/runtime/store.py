"""What a component keeps of each watched object: its parsed view, its problems and a reference for Events.

The watch handlers turn each API body into an `Entry` at once, so a component holds compact frozen views
rather than whole objects, and parsing (which never raises) happens once per change, not once per sync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from operators.kube.parse import Problem

V = TypeVar("V")


@dataclass(frozen=True)
class ObjectRef:
    """Enough of an object to post an Event about it (`involvedObject`)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    def involved_object(self) -> dict[str, str]:
        ref = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name, "uid": self.uid}
        return {**ref, "namespace": self.namespace} if self.namespace else ref


@dataclass(frozen=True)
class Entry(Generic[V]):
    view: V | None  # None: the object is unusable as a whole (its problems say why)
    problems: tuple[Problem, ...]
    ref: ObjectRef


def ref_of(body: Mapping[str, Any], api_version: str, kind: str) -> ObjectRef:
    md = body.get("metadata") or {}
    return ObjectRef(str(body.get("apiVersion") or api_version), str(body.get("kind") or kind),
                     str(md.get("namespace") or ""), str(md.get("name") or ""), str(md.get("uid") or ""))


def entry(body: Mapping[str, Any], parse: Callable[[object], tuple[Any, list[Problem]]], api_version: str,
          kind: str) -> Entry[Any]:
    view, problems = parse(body)
    return Entry(view, tuple(problems), ref_of(body, api_version, kind))


def views(entries: Iterable[Entry[V]]) -> Iterator[V]:
    """The usable views among `entries` (an unusable object's view is None)."""
    return (e.view for e in entries if e.view is not None)
