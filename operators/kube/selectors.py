"""Kubernetes label selectors (matchLabels + matchExpressions), parsed from API dicts into frozen views.

Parsing never raises: an invalid selector comes back as `None`, its problems reported to the `Reader` of
the object that holds it, so that the caller can decide how to fail (usually closed: the peer or policy
that holds it allows nothing).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from operators.kube.parse import Reader

_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class Labels(Mapping[str, str]):
    """An immutable, hashable label map, so that views holding labels stay frozen and comparable."""

    __slots__ = ("_items", "_map")

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._map = dict(sorted((items or {}).items()))
        self._items = tuple(self._map.items())

    def __getitem__(self, key: str) -> str:
        return self._map[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    # the dict's own methods: Mapping's generic ones cost most of a selector match
    def __contains__(self, key: object) -> bool:
        return key in self._map

    def items(self):  # type: ignore[override]
        return self._map.items()

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other.items())

    def __repr__(self) -> str:
        return f"Labels({self._map!r})"


def valid_label_key(key: object) -> bool:
    """A qualified name: `[prefix/]name`, prefix a DNS subdomain, name up to 63 characters."""
    if not isinstance(key, str):
        return False
    prefix, _, name = key.rpartition("/")
    if "/" in key and not (0 < len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= 63 and bool(_NAME.fullmatch(name))


def valid_label_value(value: object) -> bool:
    """Empty, or up to 63 alphanumerics with `-_.` inside."""
    return isinstance(value, str) and (value == "" or (len(value) <= 63 and bool(_NAME.fullmatch(value))))


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions entry (matchLabels entries become `In` with one value)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        return not present


@dataclass(frozen=True)
class Selector:
    """A parsed label selector; requirements are ANDed. `nothing` is the null selector."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        return not self.nothing and all(r.matches(labels) for r in self.requirements)

    @property
    def is_empty(self) -> bool:
        """True when the selector matches every label set."""
        return not self.nothing and not self.requirements


EVERYTHING = Selector()
NOTHING = Selector(nothing=True)


def parse_selector(obj: Any, reader: Reader, where: str = "selector") -> Selector | None:
    """Parse an API LabelSelector; `None` (null) gives NOTHING, `{}` gives EVERYTHING.

    None when the input is invalid; each thing wrong with it is reported to `reader`, prefixed with `where`.
    """
    if obj is None:
        return NOTHING
    if not isinstance(obj, dict):
        reader.problem(f"{where}: not an object")
        return None
    found = len(reader.problems)
    reqs: list[Requirement] = []
    match_labels = obj.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        reader.problem(f"{where}.matchLabels: not an object")
        match_labels = {}
    for k, v in match_labels.items():
        if not valid_label_key(k):
            reader.problem(f"{where}.matchLabels: invalid key {k!r}")
        elif not valid_label_value(v):
            reader.problem(f"{where}.matchLabels[{k}]: invalid value {v!r}")
        else:
            reqs.append(Requirement(k, "In", (v,)))
    exprs = obj.get("matchExpressions") or []
    if not isinstance(exprs, list):
        reader.problem(f"{where}.matchExpressions: not a list")
        exprs = []
    for i, e in enumerate(exprs):
        req, problem = _parse_expression(e, f"{where}.matchExpressions[{i}]")
        if problem:
            reader.problem(problem)
        elif req:
            reqs.append(req)
    if len(reader.problems) > found:
        return None
    return Selector(tuple(sorted(set(reqs), key=lambda r: (r.key, r.operator, r.values))))


def _parse_expression(e: Any, where: str) -> tuple[Requirement | None, str | None]:
    if not isinstance(e, dict):
        return None, f"{where}: not an object"
    key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
    if not valid_label_key(key):
        return None, f"{where}: invalid key {key!r}"
    if op not in OPERATORS:
        return None, f"{where}: unknown operator {op!r}"
    if not isinstance(values, list) or not all(valid_label_value(v) for v in values):
        return None, f"{where}: invalid values {values!r}"
    if op in ("In", "NotIn") and not values:
        return None, f"{where}: operator {op} needs values"
    if op in ("Exists", "DoesNotExist") and values:
        return None, f"{where}: operator {op} takes no values"
    return Requirement(key, op, tuple(sorted(set(values)))), None
