"""Endpoint churn through knet's own controller and a real nginx, run inside the benchmark's namespace:
`nsenter --net=/run/netns/knet-bench-ing python -m bench.ingress_churn PREFIX STEPS` prints JSON.

Each step replaces the Service's endpoints with a random subset of the backend's ports, runs one
controller sync (the code `knet ingress` runs on every watch event batch), then sends requests and
checks that only the current endpoints answer. Events and status writes are switched off (no API)."""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from bench.ingress_nginx import BACKEND_PORTS, HOST, KNET_PORT, bench_objects, knet_runtime
from operators.ingress.controller import IngressController, prepare_prefix
from operators.ingress.metrics import Metrics
from operators.ingress.model import IngressConfig
from operators.ingress.nginx import Nginx
from operators.ingress.operator import hand_over
from operators.ingress.status import StatusWriter
from operators.runtime.schedule import Periods
from operators.runtime.store import ObjectRef


class NoEvents:
    async def post(self, ref: ObjectRef, reason: str, message: str) -> bool:
        return True


def answering_port() -> int:
    conn = http.client.HTTPConnection("127.0.0.1", KNET_PORT, timeout=3)
    conn.request("GET", "/", headers={"Host": HOST})
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return int(body) if response.status == 200 else 0


async def churn(prefix: Path, steps: int, seed: int = 7) -> dict[str, Any]:
    rt = knet_runtime(prefix)
    prepare_prefix(rt)
    metrics, nginx = Metrics(), Nginx(rt)
    controller = IngressController(IngressConfig(), rt, nginx, metrics, NoEvents(),  # type: ignore[arg-type]
                                   StatusWriter(None, metrics, ()), Periods(0, 1))
    hand_over(controller, bench_objects(BACKEND_PORTS[:3]))
    await controller.sync()
    reloads, pushes = metrics.reloads.labels("success")._value.get(), metrics.endpoint_updates._value.get()
    rng, wrong, syncs = random.Random(seed), 0, []
    try:
        for _ in range(steps):
            ports = tuple(sorted(rng.sample(BACKEND_PORTS, rng.randint(1, len(BACKEND_PORTS)))))
            hand_over(controller, bench_objects(ports))
            t0 = time.perf_counter()
            await controller.sync()
            syncs.append(time.perf_counter() - t0)
            seen = {await asyncio.to_thread(answering_port) for _ in range(2 * len(ports))}
            wrong += not seen <= set(ports)
    finally:
        await nginx.stop()
    return {"steps": steps, "reloads": metrics.reloads.labels("success")._value.get() - reloads,
            "pushes": metrics.endpoint_updates._value.get() - pushes, "wrong": wrong,
            "sync_ms_max": max(syncs) * 1000, "sync_ms_mean": sum(syncs) / len(syncs) * 1000}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(churn(Path(sys.argv[1]), int(sys.argv[2])))))
