"""When the agent syncs, and whether a sync is full, incremental or nothing."""

from __future__ import annotations

from operators.runtime.schedule import (
    Kind,
    Periods,
    SyncState,
    changed,
    finished,
    healthy,
    kind_of_sync,
    next_sync_at,
    started,
)

P = Periods(min=1, max=10, full=3600)


def synced_at(t: float) -> SyncState:
    return finished(started(SyncState(), t), t, Kind.FULL, ok=True)


def test_the_first_sync_is_due_at_once_and_full() -> None:
    state = SyncState()
    assert next_sync_at(state, P) == 0 and not state.synced
    assert kind_of_sync(state, 5, P, table_present=True, model_changed=False) is Kind.FULL


def test_a_change_is_programmed_after_min_period_and_a_burst_coalesces() -> None:
    state = synced_at(100)
    assert next_sync_at(state, P) == 110  # idle: the periodic check
    state = changed(state, 100.2)
    assert next_sync_at(state, P) == 101  # not before min period after the last sync
    assert changed(state, 100.7).dirty_since == 100.2  # a burst keeps its first time
    state = changed(synced_at(100), 105)
    assert next_sync_at(state, P) == 105  # long after the last sync: at once
    assert started(state, 105).dirty_since is None


def test_incremental_when_the_model_changed_nothing_when_it_did_not() -> None:
    state = synced_at(100)
    assert kind_of_sync(state, 101, P, table_present=True, model_changed=True) is Kind.INCREMENTAL
    assert kind_of_sync(state, 101, P, table_present=True, model_changed=False) is Kind.NONE


def test_full_when_the_table_is_gone_or_the_full_period_passed() -> None:
    state = synced_at(100)
    assert kind_of_sync(state, 110, P, table_present=False, model_changed=False) is Kind.FULL
    assert kind_of_sync(state, 3700, P, table_present=True, model_changed=False) is Kind.FULL
    state = finished(started(state, 200), 200, Kind.INCREMENTAL, ok=True)
    assert state.last_full == 100  # an incremental sync does not restart the full period


def test_a_failure_retries_with_backoff_and_the_retry_is_full() -> None:
    state = finished(started(synced_at(100), 200), 200, Kind.INCREMENTAL, ok=False)
    assert state.failures == 1 and state.failing_since == 200
    assert next_sync_at(state, P) == 201
    assert kind_of_sync(state, 201, P, table_present=True, model_changed=False) is Kind.FULL
    for t in (201, 203, 207, 215):
        state = finished(started(state, t), t, Kind.FULL, ok=False)
    assert state.failures == 5 and state.failing_since == 200
    assert next_sync_at(state, P) == 215 + 10  # backoff capped at the max period
    state = finished(started(state, 225), 225, Kind.FULL, ok=True)
    assert (state.failures, state.failing_since, state.last_full) == (0, None, 225)


def test_healthy_unless_a_change_or_a_failure_waits_too_long() -> None:
    state = synced_at(100)
    assert healthy(state, 10_000, timeout=20)  # idle for long: still healthy (like kube-proxy)
    assert healthy(changed(state, 100), 119, timeout=20)
    assert not healthy(changed(state, 100), 121, timeout=20)
    failing = finished(started(state, 130), 130, Kind.FULL, ok=False)
    assert healthy(failing, 140, timeout=20) and not healthy(failing, 151, timeout=20)


def test_periods_must_be_ordered() -> None:
    assert Periods().problems() == []
    assert Periods(min=5, max=1).problems()
    assert Periods(min=0, max=0, full=0).problems()
