"""The status the controller writes, as patch bodies, or None when what is there already says it. Pure.

Comparing before writing keeps a resync from touching objects whose status is already right (no
resourceVersion churn, no watch events that would wake the controller again).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from operators.controller.pools import PoolProblem, PoolUsage
from operators.kube.conditions import stamp
from operators.kube.parse import field as get


def ready_condition(obj: Mapping[str, Any], ok: bool, reason: str, message: str, now: datetime.datetime
                    ) -> dict[str, Any]:
    """The Ready condition, keeping its lastTransitionTime while its status stays the same."""
    status = "True" if ok else "False"
    old = next((c for c in get(get(obj, "status"), "conditions") or [] if get(c, "type") == "Ready"), {})
    since = get(old, "lastTransitionTime") if get(old, "status") == status else None
    return {"type": "Ready", "status": status, "observedGeneration": int(get(get(obj, "metadata"), "generation", 0)),
            "lastTransitionTime": since or stamp(now), "reason": reason, "message": message[:32768]}


def _changed(obj: Mapping[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
    current = get(obj, "status") or {}
    return None if all(current.get(k) == v for k, v in status.items()) else {"status": status}


def pool_status(obj: Mapping[str, Any], usage: PoolUsage | None, problem: PoolProblem | None,
                now: datetime.datetime) -> dict[str, Any] | None:
    """A pool's counts and Ready condition (a pool that is not used has no addresses to count)."""
    usage = usage or PoolUsage(0, 0)
    if problem:
        condition = ready_condition(obj, False, problem.reason, problem.message, now)
    elif usage.available == 0:
        condition = ready_condition(obj, True, "Exhausted", f"all {usage.allocated} addresses are allocated", now)
    else:
        condition = ready_condition(obj, True, "Allocating",
                                    f"{usage.allocated} allocated, {usage.available} available", now)
    return _changed(obj, {"observedGeneration": condition["observedGeneration"], "allocated": usage.allocated,
                          "available": usage.available, "conditions": [condition]})


def service_status(current: Sequence[str], addresses: Sequence[str]) -> dict[str, Any] | None:
    """status.loadBalancer of a Service: our addresses, or none (released)."""
    if tuple(current) == tuple(addresses):
        return None
    ingress = [{"ip": ip, "ipMode": "VIP"} for ip in addresses] or None
    return {"status": {"loadBalancer": {"ingress": ingress}}}


def dnsconfig_status(obj: Mapping[str, Any], ok: bool, reason: str, message: str, problems: Sequence[str],
                     now: datetime.datetime) -> dict[str, Any] | None:
    condition = ready_condition(obj, ok, reason, message, now)
    return _changed(obj, {"observedGeneration": condition["observedGeneration"],
                          "problems": [p[:1024] for p in problems[:64]], "conditions": [condition]})
