"""Loading Kubernetes objects from YAML files, for the offline `knet render` and `knet dns --objects`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

Obj = dict[str, Any]
T = TypeVar("T")
P = TypeVar("P")


def _flatten(doc: Any, where: str) -> Iterator[Obj]:
    """Yield objects, unpacking `kind: List` (as `kubectl get -o yaml` writes it). Every consumer reads
    `kind` and `apiVersion` as strings, so an object whose are not is refused here, by where it is."""
    if not isinstance(doc, dict):
        return
    for field in ("kind", "apiVersion"):
        if not isinstance(doc.get(field, ""), str):
            raise ValueError(f"{where}: {field} must be a string, not {doc[field]!r}")
    if not isinstance(doc.get("metadata") or {}, dict):
        raise ValueError(f"{where}: metadata must be a mapping, not {doc['metadata']!r}")
    if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
        for i, item in enumerate(doc["items"]):
            yield from _flatten(item, f"{where}, item {i + 1}")
    elif doc.get("kind"):
        yield doc


def load_objects(paths: Iterable[str | Path]) -> list[Obj]:
    """Read every object from the given YAML files ('-' is stdin), in file order. ValueError, naming the
    file and document, for text that is not YAML or an object whose kind or apiVersion is not a string."""
    import sys

    out: list[Obj] = []
    for p in paths:
        text = sys.stdin.read() if str(p) == "-" else Path(p).read_text()
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as e:
            raise ValueError(f"{p}: not YAML: {e}") from None
        for i, doc in enumerate(docs):
            out.extend(_flatten(doc, f"{p}: document {i + 1}"))
    return out


def of_kind(objects: Iterable[Obj], kind: str, api_prefix: str = "") -> list[Obj]:
    """The objects of one kind (optionally only those whose apiVersion starts with api_prefix)."""
    return [o for o in objects if o.get("kind") == kind and o.get("apiVersion", "").startswith(api_prefix)]


def key(obj: Obj) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects."""
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))


def parse_all(objects: Iterable[Obj], parser: Callable[[Obj], tuple[T | None, list[P]]], problems: list[P]) -> list[T]:
    """Run a never-raising `parse_*` over objects: the views that parsed, their problems appended."""
    views: list[T] = []
    for obj in objects:
        view, found = parser(obj)
        problems.extend(found)
        if view is not None:
            views.append(view)
    return views
