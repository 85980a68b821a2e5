"""What knet's cluster components (knet controller, knet ingress) share: the command-line options for
reaching the API server, serving health and metrics and naming the pod, logging, and the debounced
sync loop that turns watch events into syncs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periods:
    min: float = 0.5  # seconds that collect a burst of changes into one sync
    max: float = 30.0  # seconds between syncs at most, changes or not


def add_common_options(p: argparse.ArgumentParser) -> None:
    """--api-server, --kubeconfig, --metrics-addr, --health-addr, --pod-name, the sync periods, -v."""
    env = os.environ.get
    p.add_argument("--api-server", default=env("KNET_API_SERVER"),
                   help="the control-plane endpoint, https://HOST:PORT (default: $KNET_API_SERVER)")
    p.add_argument("--kubeconfig", help="server and credentials from a kubeconfig instead of the service account")
    p.add_argument("--metrics-addr", default=f"0.0.0.0:{env('KNET_METRICS_PORT') or 9090}",
                   help="Prometheus /metrics (default %(default)s)")
    p.add_argument("--health-addr", default=f"0.0.0.0:{env('KNET_HEALTH_PORT') or 8080}",
                   help="/healthz, /livez, /readyz (default %(default)s)")
    p.add_argument("--pod-name", default=env("POD_NAME"),
                   help="this instance's name in Events (and peering) (default: $POD_NAME, else the host name)")
    p.add_argument("--min-sync-period", type=float, default=Periods.min,
                   help="seconds to collect changes into one sync (default %(default)s)")
    p.add_argument("--max-sync-period", type=float, default=Periods.max,
                   help="seconds between resyncs at most (default %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (Kopf's too)")


def setup_logging(verbose: bool) -> None:
    """Our INFO (DEBUG with -v); Kopf only from WARNING unless verbose (it logs every event at INFO)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf").setLevel(logging.DEBUG if verbose else logging.WARNING)


async def sync_loop(dirty: asyncio.Event, periods: Periods, sync: Callable[[], Awaitable[None]], what: str,
                    failed: Callable[[], None]) -> None:
    """Wait for the first change (Kopf sends no event before every index has its initial listing), then
    sync `min` seconds after each change and at least every `max` seconds; a failure is logged, counted
    with `failed()` and retried at the next turn."""
    await dirty.wait()
    while True:
        await asyncio.sleep(periods.min)
        dirty.clear()
        try:
            await sync()
        except Exception:
            log.exception("%s sync failed", what)
            failed()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(dirty.wait(), periods.max)


def fail(message: str) -> int:
    """Exit status 2 with `error: message` on stderr (bad options, no credentials)."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def run_operator(main: Coroutine[Any, Any, None]) -> int:
    """Run a component until Kopf stops on a signal; exit status 2 when it cannot log in."""
    from operators.agent.login import LoginError

    try:
        asyncio.run(main)
    except LoginError as e:
        return fail(str(e))
    return 0


def waker(changed: Callable[[], None]) -> Callable[..., Awaitable[None]]:
    """A Kopf event handler that only wakes the sync loop (the indices hold what changed)."""
    async def wake(**_: Any) -> None:
        changed()
    return wake
