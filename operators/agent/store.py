"""What the agent keeps of each watched object: its parsed view, its problems and a reference for Events.

The watch handlers turn each API body into an `Entry` at once, so the agent holds compact frozen
views rather than whole objects, and parsing (which never raises) happens once per change, not once
per sync. `Snapshot.collect` gathers the entries for one sync.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from operators.kube import services as api
from operators.kube.services import EndpointSlice, Node, Problem, Service
from operators.runtime.store import Entry, ObjectRef, entry, views

V = TypeVar("V")
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def service_entry(body: Mapping[str, Any]) -> Entry[Service]:
    return entry(body, api.parse_service, "v1", "Service")


def slice_entry(body: Mapping[str, Any]) -> Entry[EndpointSlice]:
    return entry(body, api.parse_endpoint_slice, "discovery.k8s.io/v1", "EndpointSlice")


def node_entry(body: Mapping[str, Any]) -> Entry[Node]:
    return entry(body, api.parse_node, "v1", "Node")


def trigger_time(body: Mapping[str, Any]) -> float | None:
    """When the change behind this EndpointSlice happened (the controller's annotation), epoch seconds."""
    value = ((body.get("metadata") or {}).get("annotations") or {}).get(TRIGGER_TIME)
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def new_trigger(seen: Mapping[str, float], uid: str, trigger: float | None, since: float) -> bool:
    """Whether an EndpointSlice event brings a change whose programming latency is worth measuring:
    not one from before the agent started (the initial listing), not one already seen (a slice sent
    again with the same trigger time), as kube-proxy counts them."""
    return trigger is not None and trigger >= since and seen.get(uid) != trigger


@dataclass(frozen=True)
class Snapshot:
    """The views of one sync, the problems found while parsing them, and where to report problems."""

    services: tuple[Service, ...]
    slices: tuple[EndpointSlice, ...]
    nodes: tuple[Node, ...]
    problems: tuple[Problem, ...]
    entries: tuple[Entry[Any], ...]

    @functools.cached_property
    def refs(self) -> Mapping[tuple[str, str, str], ObjectRef]:
        """(kind, namespace, name) -> ref; built only when there is a problem to report (20k entries at
        10k Services would cost every sync a few milliseconds)."""
        return {(e.ref.kind, e.ref.namespace, e.ref.name): e.ref for e in self.entries}

    @classmethod
    def collect(cls, services: Iterable[Entry[Service]], slices: Iterable[Entry[EndpointSlice]],
                nodes: Iterable[Entry[Node]]) -> Snapshot:
        found: dict[str, tuple[Any, ...]] = {}
        problems: list[Problem] = []
        entries: list[Entry[Any]] = []
        for what, group in (("services", services), ("slices", slices), ("nodes", nodes)):
            start = len(entries)
            entries.extend(group)
            found[what] = tuple(views(entries[start:]))
            problems.extend(p for e in entries[start:] if e.problems for p in e.problems)
        return cls(found["services"], found["slices"], found["nodes"], tuple(problems),
                   tuple(entries))
