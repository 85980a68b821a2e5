"""The sync loop every component runs: nothing before the watches listed everything, and a sync that
raises is counted and retried without stopping the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from operators.runtime import schedule
from operators.runtime.loop import StepLoop, SyncLoop
from operators.runtime.schedule import Kind, Periods

PERIODS = Periods(min=0.01, max=10, full=3600)


class Flaky(SyncLoop):
    side = "test"

    def __init__(self, on_error: Callable[[], None]) -> None:
        super().__init__(PERIODS, on_error)
        self.calls = 0

    async def sync(self, now: float) -> None:
        self.calls += 1
        self.state = schedule.started(self.state, now)
        if self.calls == 1:
            raise RuntimeError("the first sync fails")
        self.state = schedule.finished(self.state, now, Kind.FULL, ok=True)


def run_until(loop: SyncLoop, done: Callable[[], bool], between: Callable[[], Awaitable[None]] | None = None) -> None:
    async def scenario() -> None:
        task = asyncio.create_task(loop.run())
        await asyncio.sleep(0.05)
        assert not loop.state.last_start, "a sync before the watches listed everything"
        loop.changed()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if done():
                break
        task.cancel()

    asyncio.run(scenario())


def test_a_failing_sync_is_counted_and_retried() -> None:
    errors: list[int] = []
    loop = Flaky(lambda: errors.append(1))
    run_until(loop, lambda: loop.calls >= 2)
    assert loop.calls == 2 and errors == [1] and loop.state.synced


def test_a_step_loop_is_synced_after_its_first_whole_step() -> None:
    steps: list[int] = []

    async def step() -> None:
        steps.append(1)
        if len(steps) == 1:
            raise RuntimeError("the first step fails")

    errors: list[int] = []
    loop = StepLoop("test", PERIODS, lambda: errors.append(1), step)
    run_until(loop, lambda: loop.state.synced)
    assert steps == [1, 1] and errors == [1] and loop.state.synced and loop.healthy()
