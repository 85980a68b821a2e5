"""The sync loop both sides of the agent run: nothing before the watches listed everything, and a sync
that raises is counted and retried without stopping the loop."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter

from operators.agent import schedule
from operators.agent.loop import SyncLoop
from operators.agent.schedule import Kind, Periods


class Flaky(SyncLoop):
    side = "test"

    def __init__(self, errors: Counter) -> None:
        super().__init__(Periods(min=0.01, max=10, full=3600), errors)
        self.calls = 0

    async def sync(self, now: float) -> None:
        self.calls += 1
        self.state = schedule.started(self.state, now)
        if self.calls == 1:
            raise RuntimeError("the first sync fails")
        self.state = schedule.finished(self.state, now, Kind.FULL, ok=True)


def test_a_failing_sync_is_counted_and_retried() -> None:
    registry = CollectorRegistry()
    loop = Flaky(Counter("errors", "by kind", ["kind"], registry=registry))

    async def scenario() -> None:
        task = asyncio.create_task(loop.run())
        await asyncio.sleep(0.05)
        assert loop.calls == 0, "a sync before the watches listed everything"
        loop.changed()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if loop.calls >= 2:
                break
        task.cancel()

    asyncio.run(scenario())
    assert loop.calls == 2 and registry.get_sample_value("errors_total", {"kind": "sync"}) == 1 and loop.state.synced
