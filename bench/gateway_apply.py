"""From applying an HTTPRoute to its first 200, through knet's own controller and a real nginx, run inside the
benchmark's namespace: `nsenter --net=/run/netns/knet-bench-ing python -m bench.gateway_apply PREFIX COUNT
GAP` prints JSON.

The controller runs its real sync loop with the ingress component's periods (a sync starts at least
`min_period` after the one before, so a burst of changes gives one reload). Each route, for a host of its
own, is handed over GAP seconds after the previous one answered: 0 is a stream of routes, each waiting for
the minimum period since the previous sync; the minimum period is a route arriving at an idle controller,
which syncs at once. A route is handed over as a relisting of every object with it (`hand_over` has no
single watch event), then the loop is told of the change as the watches tell it. The clock runs until a
request for its host is answered 200 (polled every 2 ms, a new connection each time). What a cluster adds,
the API server's write and watch delivery, is not in it. Events and status writes are switched off (no
API)."""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from bench.gateway_objects import gateway_objects, http_route
from bench.ingress_churn import NoEvents
from bench.ingress_nginx import BACKEND_PORTS, HOST, KNET_PORT, knet_runtime
from operators.ingress.controller import IngressController, prepare_prefix
from operators.ingress.metrics import Metrics
from operators.ingress.model import IngressConfig
from operators.ingress.nginx import Nginx
from operators.ingress.operator import hand_over
from operators.ingress.status import StatusWriter
from operators.runtime.cli import COMPONENT_PERIODS

POLL = 0.002  # seconds between two requests for a route not yet served


def answer(host: str) -> int:
    """The status of one request for `host` on knet's port (0: none came back)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", KNET_PORT, timeout=3)
        conn.request("GET", "/", headers={"Host": host})
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return 0


def nearest_rank(values: list[float], q: float) -> float:
    return sorted(values)[max(math.ceil(q * len(values)) - 1, 0)]


async def apply_routes(prefix: Path, count: int, gap: float) -> dict[str, Any]:
    rt = knet_runtime(prefix)
    prepare_prefix(rt)
    metrics, nginx = Metrics(), Nginx(rt)
    controller = IngressController(IngressConfig(), rt, nginx, metrics, NoEvents(),  # type: ignore[arg-type]
                                   StatusWriter(None, metrics, ()), COMPONENT_PERIODS)
    syncs: list[float] = []  # each sync's own duration: render, nginx -t, the reload's signal, the push

    async def timed() -> None:
        t0 = time.perf_counter()
        await controller.sync()
        syncs.append(time.perf_counter() - t0)

    controller.loop.step = timed
    objects = gateway_objects(BACKEND_PORTS[:1], KNET_PORT, route=False)
    hand_over(controller, objects)
    controller.changed()
    loop = asyncio.create_task(controller.run())
    try:
        while not controller.synced:
            await asyncio.sleep(0.01)
        reloads, first = metrics.reloads.labels("success")._value.get(), len(syncs)
        times = []
        for i in range(count):
            await asyncio.sleep(gap)
            host = f"r{i}.{HOST}"
            t0 = time.perf_counter()
            objects.append(http_route(f"r{i}", host))
            hand_over(controller, objects)
            controller.changed()
            while await asyncio.to_thread(answer, host) != 200:
                await asyncio.sleep(POLL)
            times.append(time.perf_counter() - t0)
    finally:
        loop.cancel()
        await nginx.stop()
    return {"routes": count, "reloads": metrics.reloads.labels("success")._value.get() - reloads,
            "p50_ms": nearest_rank(times, 0.5) * 1000, "p99_ms": nearest_rank(times, 0.99) * 1000,
            "max_ms": max(times) * 1000, "min_period_ms": COMPONENT_PERIODS.min * 1000,
            "sync_ms_p50": nearest_rank(syncs[first:], 0.5) * 1000,
            "sync_ms_p99": nearest_rank(syncs[first:], 0.99) * 1000}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(apply_routes(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))))
