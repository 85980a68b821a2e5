"""What the agent keeps of each watched object: its parsed view, its problems and a reference for Events.

The watch handlers turn each API body into an `Entry` at once, so the agent holds compact frozen
views rather than whole objects, and parsing (which never raises) happens once per change, not once
per sync. `ProxyStore` keeps them as a sync reads them, with what changed since the last one.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from operators.kube import services as api
from operators.kube.informer import Index
from operators.kube.services import EndpointSlice, Node, Problem, Service
from operators.proxy.model import Changes, ServiceKey, Views, slice_owner
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


class _Grouped(Mapping[ServiceKey, tuple[V, ...]]):
    """A store's entries grouped by Service, read as views (what `Views` asks for), without copying them."""

    def __init__(self, groups: dict[ServiceKey, dict[Hashable, Entry[V]]]) -> None:
        self.groups = groups

    def __getitem__(self, key: ServiceKey) -> tuple[V, ...]:
        return tuple(e.view for e in self.groups[key].values() if e.view is not None)

    def __iter__(self) -> Iterator[ServiceKey]:
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)


class ProxyStore:
    """The proxy's views as the informers keep them: Services by (namespace, name), EndpointSlices by the
    Service they give endpoints to, the Nodes; the objects with problems; and the change set since the
    last sync (`take`), which the sync hands to `build_model` (kube-proxy's change trackers).

    Every view that an informer replaces passes through here (`Index.replaced`): a Service counts for its
    own key, an EndpointSlice for the Service it belonged to before the change and for the one it belongs
    to after (a slice may move). Nothing here passes over every object."""

    def __init__(self, nodes: Iterable[Entry[Node]] = ()) -> None:
        self.services = Index(service_entry, replaced=self._service)
        self.slices = Index(slice_entry, replaced=self._slice)
        self.nodes = nodes
        self.by_service: dict[ServiceKey, dict[Hashable, Entry[Service]]] = {}
        self.by_owner: dict[ServiceKey, dict[Hashable, Entry[EndpointSlice]]] = {}
        self.flagged: dict[tuple[str, Hashable], Entry[Any]] = {}  # (kind, uid) -> an entry with problems
        self.changed_services: set[ServiceKey] = set()
        self.changed_endpoints: set[ServiceKey] = set()

    def _service(self, uid: Hashable, old: Entry[Service] | None, new: Entry[Service] | None) -> None:
        keys = [(e.ref.namespace, e.ref.name) if e is not None and e.view is not None else None for e in (old, new)]
        self.changed_services.update((e.ref.namespace, e.ref.name) for e in (old, new) if e is not None)
        _regroup(self.by_service, uid, keys[0], keys[1], new)
        self._flag("Service", uid, new)

    def _slice(self, uid: Hashable, old: Entry[EndpointSlice] | None, new: Entry[EndpointSlice] | None) -> None:
        keys = [slice_owner(e.view) if e is not None and e.view is not None else None for e in (old, new)]
        self.changed_endpoints.update(key for key in keys if key is not None)
        _regroup(self.by_owner, uid, keys[0], keys[1], new)
        self._flag("EndpointSlice", uid, new)

    def _flag(self, kind: str, uid: Hashable, new: Entry[Any] | None) -> None:
        if new is not None and new.problems:
            self.flagged[(kind, uid)] = new
        else:
            self.flagged.pop((kind, uid), None)

    def take(self) -> Changes:
        """What changed since the last `take`, and nothing from then on."""
        changes = Changes(frozenset(self.changed_services), frozenset(self.changed_endpoints))
        self.changed_services.clear()
        self.changed_endpoints.clear()
        return changes

    def views(self) -> Views:
        return Views(_Grouped(self.by_service), _Grouped(self.by_owner), tuple(views(self.nodes)))

    def problems(self) -> list[Problem]:
        """Every problem found while parsing the objects (few: only the flagged ones are looked at)."""
        found = [p for e in self.flagged.values() for p in e.problems]
        return found + [p for e in self.nodes if e.problems for p in e.problems]

    def ref(self, kind: str, namespace: str, name: str) -> ObjectRef | None:
        """Where to post an Event about an object: a Service by its key, anything else by a search."""
        if kind == "Service":
            group = self.by_service.get((namespace, name)) or {}
            found = next(iter(group.values()), None) or next(
                (e for e in self.flagged.values() if e.ref.kind == kind and e.ref.name == name
                 and e.ref.namespace == namespace), None)
            return found.ref if found else None
        entries = itertools.chain(self.slices, self.nodes) if kind == "EndpointSlice" else self.nodes
        return next((e.ref for e in entries if (e.ref.kind, e.ref.namespace, e.ref.name) == (kind, namespace, name)),
                    None)


def _regroup(groups: dict[ServiceKey, dict[Hashable, Entry[V]]], uid: Hashable, old: ServiceKey | None,
             new: ServiceKey | None, entry: Entry[V] | None) -> None:
    """Move `uid` from group `old` to group `new` (None: none) as `entry`; in place when the group stays,
    so that the first of two copies of a Service stays the first. An empty group goes."""
    if old is not None and old != new:
        group = groups.get(old, {})
        group.pop(uid, None)
        if not group:
            groups.pop(old, None)
    if new is not None and entry is not None:
        groups.setdefault(new, {})[uid] = entry
