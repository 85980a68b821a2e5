"""Status conditions as data: what the controller shell will write to GatewayClasses, Gateways (and their
listeners) and HTTPRoutes (per parent). The model decides them; the shell only adds the generation and the
transition time, so the same objects always give the same conditions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str = ""


def condition(type_: str, ok: bool, reason: str, message: str = "") -> Condition:
    return Condition(type_, ok, reason, message)


def to_status(conditions: Iterable[Condition], generation: int, now: str) -> list[dict[str, Any]]:
    """The `conditions` list of a status, as the API wants it (the shell keeps lastTransitionTime when the
    status of a condition did not change)."""
    return [{"type": c.type, "status": "True" if c.status else "False", "reason": c.reason, "message": c.message,
             "observedGeneration": generation, "lastTransitionTime": now} for c in conditions]


def find(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)
