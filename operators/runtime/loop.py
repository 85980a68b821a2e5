"""The debounced sync loop every component runs: the watches call `changed`, `run` calls `sync` when the
schedule (`schedule.py`) says so. The agent runs one per side (proxy, NetworkPolicy, CNI), so a slow or
failing sync on one side never holds up the other; the ingress and the controller run a `StepLoop`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable

from operators.runtime import schedule
from operators.runtime.schedule import Kind, Periods, SyncState
from operators.runtime.servers import Status

log = logging.getLogger(__name__)
HEALTH_TIMEOUT_PERIODS = 2  # /healthz fails when a due sync waits this many max periods (kube-proxy: 2)


class SyncLoop:
    side = ""  # named in the log
    # No cyclic garbage collection during a sync, its garbage collected after it. Only one side may
    # pause it (the other's sync, interleaved, would turn it back on): the proxy's, whose full sync at
    # 10k Services makes over a million objects and lost ~0.2 s to the collector's passes over them.
    pauses_gc = False

    def __init__(self, periods: Periods, on_error: Callable[[], None]) -> None:
        self.periods = periods
        self.on_error = on_error  # counts a sync that raised
        self.state = SyncState()
        self.listed = asyncio.Event()  # set by the first watch event: every index is populated by then
        self.wake = asyncio.Event()

    def changed(self) -> None:
        """A watched object changed (the watches tell only once every kind was listed)."""
        self.listed.set()
        self.state = schedule.changed(self.state, time.monotonic())
        self.wake.set()

    async def sync(self, now: float) -> None:
        raise NotImplementedError

    def healthy(self) -> bool:
        timeout = HEALTH_TIMEOUT_PERIODS * self.periods.max
        return schedule.healthy(self.state, time.monotonic(), timeout)

    def status(self) -> Status:
        """What /healthz and /readyz report when this side is the agent's first."""
        return Status(self.healthy(), self.state.synced, None, True)

    async def run(self) -> None:
        """Sync whenever the schedule says so, forever; one failing sync never stops the loop."""
        await self.listed.wait()
        log.info("%s: the watches listed every object; starting to program the rules", self.side)
        while True:
            self.wake.clear()
            delay = schedule.next_sync_at(self.state, self.periods) - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), delay)
                continue
            started = time.monotonic()
            if self.pauses_gc:
                gc.disable()
            try:
                await self.sync(started)
            except Exception:
                log.exception("%s sync failed unexpectedly", self.side)
                self.on_error()
                self.state = schedule.finished(self.state, started, Kind.FULL, ok=False)
            finally:
                if self.pauses_gc:
                    gc.enable()


class StepLoop(SyncLoop):
    """A loop whose every sync is one whole `step` (the ingress and the controller rebuild everything
    each time), so each successful sync counts as full."""

    def __init__(self, side: str, periods: Periods, on_error: Callable[[], None],
                 step: Callable[[], Awaitable[None]]) -> None:
        super().__init__(periods, on_error)
        self.side = side
        self.step = step

    async def sync(self, now: float) -> None:
        self.state = schedule.started(self.state, now)
        await self.step()
        self.state = schedule.finished(self.state, now, Kind.FULL, ok=True)
