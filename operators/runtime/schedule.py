"""When the agent syncs and how: the timing and full-versus-incremental decisions, as pure functions.

Timing follows kube-proxy's bounded-frequency runner: a change is programmed as soon as `min` seconds
have passed since the last sync started (so a burst of changes coalesces into one transaction), and a
sync runs at least every `max` seconds even without changes, to notice that someone removed our table.
After a failure the retry backs off from `min` up to `max`.

A sync is full (the whole table replaced in one transaction) on start, after any failure (the kernel
may not hold what we think), when the table went missing, and every `full` seconds; otherwise it is the
diff against the last applied model, or nothing at all when the model did not change. The default full
period is kube-proxy's (one hour): a full sync re-creates the ClientIP affinity sets, so frequent ones
would break session affinity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class Kind(Enum):
    FULL = "full"
    INCREMENTAL = "incremental"
    NONE = "none"  # nothing changed: no transaction


@dataclass(frozen=True)
class Periods:
    min: float = 1.0
    max: float = 10.0
    full: float = 3600.0

    def problems(self) -> list[str]:
        """Why these periods cannot work together ([] when they can)."""
        if not 0 <= self.min <= self.max <= self.full:
            return [f"sync periods must satisfy 0 <= min ({self.min}) <= max ({self.max}) <= full ({self.full})"]
        if self.max <= 0:
            return ["the max sync period must be positive"]
        return []


@dataclass(frozen=True)
class SyncState:
    """What the loop remembers between syncs (monotonic seconds)."""

    last_start: float | None = None  # when the last sync started
    last_full: float | None = None  # when the last successful full sync started
    dirty_since: float | None = None  # first change not yet picked up by a sync
    failures: int = 0  # consecutive failed syncs
    failing_since: float | None = None  # start of the first of them

    @property
    def synced(self) -> bool:
        """Whether the rules were fully programmed at least once (what /readyz reports)."""
        return self.last_full is not None


def changed(state: SyncState, now: float) -> SyncState:
    """An object changed: a sync is due."""
    return state if state.dirty_since is not None else replace(state, dirty_since=now)


def next_sync_at(state: SyncState, periods: Periods) -> float:
    """When the next sync should start (compare with the monotonic clock)."""
    if state.last_start is None:
        return 0.0
    if state.failures:
        return state.last_start + min(periods.max, periods.min * 2 ** (state.failures - 1))
    if state.dirty_since is not None:
        return max(state.last_start + periods.min, state.dirty_since)
    return state.last_start + periods.max


def full_due(state: SyncState, now: float, periods: Periods, table_present: bool) -> bool:
    """Whether a sync starting at `now` must be full, whatever changed (known before the model is built)."""
    return state.last_full is None or bool(state.failures) or not table_present or now - state.last_full >= periods.full


def kind_of_sync(state: SyncState, now: float, periods: Periods, table_present: bool, model_changed: bool) -> Kind:
    """Full, incremental or no transaction, for a sync starting at `now`."""
    if full_due(state, now, periods, table_present):
        return Kind.FULL
    return Kind.INCREMENTAL if model_changed else Kind.NONE


def started(state: SyncState, now: float) -> SyncState:
    """A sync starts: it picks up every change made so far."""
    return replace(state, last_start=now, dirty_since=None)


def finished(state: SyncState, started_at: float, kind: Kind, ok: bool) -> SyncState:
    """The outcome of the sync that started at `started_at`."""
    if not ok:
        since = started_at if state.failing_since is None else state.failing_since
        return replace(state, failures=state.failures + 1, failing_since=since)
    last_full = started_at if kind is Kind.FULL else state.last_full
    return replace(state, last_full=last_full, failures=0, failing_since=None)


def healthy(state: SyncState, now: float, timeout: float) -> bool:
    """kube-proxy's /healthz rule: unhealthy when a change or a failed sync waits longer than `timeout`."""
    pending = [t for t in (state.dirty_since, state.failing_since) if t is not None]
    return not pending or now - min(pending) < timeout
