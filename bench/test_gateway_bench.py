"""Gateway benchmark (issue 25): requests per second and p99 through knet's nginx serving an HTTPRoute, and
through Traefik v3 serving the same route (its file provider), to the ingress benchmark's backend, on the
same machine in the same run (goal: knet >= 1.5x Traefik's requests/s per core, a lower p99; printed); the
time from handing an HTTPRoute to knet's controller to its first 200 (goal: p99 under 1 s over 100 routes,
printed). Endpoint churn is the ingress bench's: an HTTPRoute's backends are the same upstreams, pushed by
the same code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.conftest import Bench
from bench.gateway_objects import gateway_objects
from bench.ingress_nginx import (
    BACKEND_PORTS,
    KNET_PORT,
    KNET_STATIC_PORT,
    Namespace,
    in_ns,
    knet_runtime,
)
from bench.ingress_rounds import Proxy, against_traefik, measure
from operators.gateway.offline import model_from_objects
from operators.ingress.model import IngressModel
from operators.runtime.cli import COMPONENT_PERIODS

ROOT = Path(__file__).resolve().parent.parent


def gateway_model(port: int) -> IngressModel:
    """The model knet's controller builds for the bench's Gateway (its listener on `port`, the Ingress HTTP
    port of the runtime that serves it) and HTTPRoute: what `knet render gateway` renders."""
    rt = knet_runtime(Path("."), port=port)
    model, problems, _ = model_from_objects(gateway_objects(BACKEND_PORTS[:1], port),
                                            ingress_ports=(rt.http_port, rt.https_port), taken_ports=rt.taken_ports())
    assert not problems, problems
    return model


def test_gateway_throughput_vs_traefik(bench: Bench, ingress_namespace: tuple[Namespace, Path],
                                       traefik: Path | None) -> None:
    """wrk through each proxy in turn, several rounds (`bench.ingress_rounds`: one core each, beside the
    backend): knet's nginx as the controller runs it (endpoints pushed to the Lua balancer), knet's config
    with the endpoints in the file (what `knet render gateway --out DIR` writes, with the bench's one worker
    and no access log), and Traefik."""
    ns, root = ingress_namespace
    proxies = {"knet": Proxy(ns.knet(root / "knet", gateway_model(KNET_PORT))[0], KNET_PORT),
               "knet, endpoints in the file": Proxy(ns.knet(root / "static", gateway_model(KNET_STATIC_PORT), False,
                                                            KNET_STATIC_PORT)[0], KNET_STATIC_PORT)}
    rounds = measure(bench, ns, root, proxies, traefik, bench.pick(2, 5), "HTTPRoute through ")
    if traefik is not None:
        bench.record(against_traefik(rounds, "knet"))
        bench.record(against_traefik(rounds, "knet, endpoints in the file"))


def test_route_apply_to_first_200(bench: Bench, ingress_namespace: tuple[Namespace, Path]) -> None:
    """knet's controller (its real sync loop) with a real nginx: HTTPRoutes handed over one after another,
    each timed to its first 200 (`bench.gateway_apply`): in a stream (each right after the one before
    answered) and one at a time (each to an idle controller)."""
    _, root = ingress_namespace
    count = bench.pick(10, 100)
    for what, gap in (("in a stream", 0.0), ("one at a time", COMPONENT_PERIODS.min)):
        proc = subprocess.run(in_ns(sys.executable, "-m", "bench.gateway_apply", str(root / f"apply-{gap}"),
                                    str(count), str(gap)),
                              capture_output=True, text=True, timeout=900, check=False, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-2000:]
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        bench.record(f"HTTPRoute handed to the controller -> first 200, {count} routes {what}: p50 "
                     f"{figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms (goal < 1000 ms), max "
                     f"{figures['max_ms']:.0f} ms; {figures['reloads']:.0f} reloads; the syncs themselves p50 "
                     f"{figures['sync_ms_p50']:.0f} ms, p99 {figures['sync_ms_p99']:.0f} ms; min sync period "
                     f"{figures['min_period_ms']:.0f} ms; without the API server's write and watch")
        assert figures["reloads"] >= 1, figures
