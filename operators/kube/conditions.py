"""Status conditions as the API writes them: one timestamp format, and a lastTransitionTime that moves only
when a condition's status does (so a status rewritten with the same verdict is byte-for-byte the same and
needs no write)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any


def stamp(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_transitions(new: Iterable[Mapping[str, Any]], old: Iterable[Mapping[str, Any]],
                     now: datetime.datetime) -> list[dict[str, Any]]:
    """Keep each condition's lastTransitionTime while its status stays the same."""
    before = {c.get("type"): c for c in old if isinstance(c, Mapping)}
    out = []
    for c in new:
        prev = before.get(c["type"])
        keep = prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime")
        out.append({**c, "lastTransitionTime": prev["lastTransitionTime"] if keep and prev else stamp(now)})
    return out
