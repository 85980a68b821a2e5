"""Ingress benchmark (issue 7): render time with 100 and 1k Ingresses; requests per second and p99
latency through knet's rendered config vs a minimal hand-written config for the same route (goal: ratio
>= 0.95, printed); nginx reloads during endpoint churn through knet's controller (goal: 0, asserted,
as every answer during the churn must come from a current endpoint)."""

from __future__ import annotations

import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.ingress_nginx import (
    BACKEND,
    BACKEND_PORTS,
    FORWARDING_PORT,
    HOST,
    KNET_CONSTANT_PORT,
    KNET_PORT,
    KNET_STATIC_PORT,
    MINIMAL_PORT,
    Namespace,
    backend_conf,
    bench_objects,
    constant_balancer,
    cpu_seconds,
    forwarding_headers,
    get,
    in_ns,
    knet_runtime,
    minimal_conf,
    preemptions,
)
from bench.ingress_wrk import WrkResult, parse_wrk, wrk_command
from operators.ingress import files
from operators.ingress.certs import self_signed
from operators.ingress.offline import model_from_objects
from operators.ingress.render import render_config

NEEDS = [shutil.which(b) for b in ("nginx", "wrk", "nsenter")] + [Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")]
ROOT = Path(__file__).resolve().parent.parent


def many_ingresses(n: int) -> list[dict]:
    """`n` Ingresses (each its own host, an Exact and a Prefix path, a few annotations, TLS for every
    tenth) over `n` Services with three endpoints each."""
    cert, key = (base64.b64encode(pem).decode() for pem in self_signed(["*.example.com"]))
    objects: list[dict] = [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "knet"},
                            "spec": {"controller": "knet.io/ingress-nginx"}}]
    objects += [{"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                 "metadata": {"name": "wildcard", "namespace": f"team{t}"},
                 "data": {"tls.crt": cert, "tls.key": key}} for t in range(20)]
    for i in range(n):
        ns, name = f"team{i % 20}", f"app{i}"
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                        "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                                 "ports": [{"name": "http", "port": 80}]}})
        objects.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": f"{name}-x", "namespace": ns,
                                     "labels": {"kubernetes.io/service-name": name}},
                        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                        "endpoints": [{"addresses": [f"10.{i // 250 + 1}.{i % 250}.{k + 1}"]} for k in range(3)]})
        backend = {"service": {"name": name, "port": {"number": 80}}}
        objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                        "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2026-01-01T00:00:00Z",
                                     "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m",
                                                     "nginx.ingress.kubernetes.io/limit-rps": str(10 + i % 5)}},
                        "spec": {"ingressClassName": "knet",
                                 "tls": [{"hosts": [f"{name}.example.com"], "secretName": "wildcard"}]
                                 if i % 10 == 0 else [],
                                 "rules": [{"host": f"{name}.example.com", "http": {"paths": [
                                     {"path": "/", "pathType": "Prefix", "backend": backend},
                                     {"path": "/healthz", "pathType": "Exact", "backend": backend}]}}]}})
    return objects


@pytest.mark.parametrize("count", [100, 1000])
def test_render_time(bench, count: int, tmp_path: Path) -> None:
    """Objects -> model -> nginx.conf (pure; best of a few runs), and nginx -t on the result."""
    objects = many_ingresses(count)
    best = float("inf")
    for _ in range(bench.pick(2, 5)):
        t0 = time.perf_counter()
        model, problems = model_from_objects(objects)
        text = render_config(model)
        best = min(best, time.perf_counter() - t0)
    assert not problems and len(model.ingresses) == count
    assert text.count("server_name ") == count + 1  # and the catch-all
    bench.record(f"render {count} Ingresses: {best * 1000:.0f} ms ({best / count * 1e6:.0f} us per Ingress), "
                 f"nginx.conf {len(text) / 1e6:.1f} MB")
    # nginx -t with the controller's runtime (dynamic endpoints); at 1k it takes seconds: full mode only
    if shutil.which("nginx") and (count <= 100 or bench.full):
        rt = knet_runtime(tmp_path)
        files.prepare(rt)
        files.write_certificates(model, rt)
        t0 = time.perf_counter()
        assert files.check_config(render_config(model, rt), rt, timeout=600) is None
        bench.record(f"nginx -t on it: {(time.perf_counter() - t0) * 1000:.0f} ms")


@pytest.fixture
def namespace() -> Iterator[tuple[Namespace, Path]]:
    if not all(NEEDS):
        pytest.skip("needs nginx, libnginx-mod-http-lua, wrk and nsenter")
    ns = Namespace()
    with tempfile.TemporaryDirectory(prefix="knet-bench-ing-") as tmp:
        root = Path(tmp)
        try:
            ns.backend = ns.nginx(root / "backend", backend_conf(root / "backend"), BACKEND_PORTS[0], BACKEND)
            yield ns, root
        finally:
            ns.close()


def _wrk(port: int, seconds: float) -> WrkResult:
    proc = subprocess.run(in_ns(*wrk_command(f"http://127.0.0.1:{port}/", seconds, 16, HOST), cpu=1),
                          capture_output=True, text=True, timeout=seconds + 30, check=False)
    return parse_wrk(proc.stdout)


def test_proxy_throughput_vs_minimal_config(bench, namespace: tuple[Namespace, Path]) -> None:
    """wrk (1 thread, 16 connections, CPU 1) through each proxy (one worker, CPU 0, beside the backend)
    in turn, several rounds; a ratio is the median of the rounds' ratios, so a burst of load elsewhere
    on the machine hits one round rather than one side. The goal compares knet's config (the controller's:
    endpoints pushed to the Lua balancer) with the minimal one; three more configs split the difference:
    knet's with its endpoints in the file (no Lua per request), knet's with a balancer that sets one
    constant peer (the Lua framework without knet's Lua) and the minimal one with knet's forwarding
    headers. Also printed: the CPU time per request of each proxy's worker and of the backend (which
    parses the headers each proxy adds), the cost behind the throughput, which load elsewhere on the
    machine barely changes."""
    ns, root = namespace
    backend = ns.backend
    model, _ = model_from_objects(bench_objects(BACKEND_PORTS[:1]))
    knet_worker, knet_conf = ns.knet(root / "knet", model)
    proxies = {"knet": (knet_worker, KNET_PORT),
               "minimal": (ns.nginx(root / "minimal", minimal_conf(root / "minimal"), MINIMAL_PORT), MINIMAL_PORT),
               "knet, endpoints in the file": (ns.knet(root / "static", model, False, KNET_STATIC_PORT)[0],
                                               KNET_STATIC_PORT),
               "knet, constant-peer balancer": (ns.knet(root / "const", model, True, KNET_CONSTANT_PORT,
                                                        constant_balancer)[0], KNET_CONSTANT_PORT),
               "minimal + knet's headers": (ns.nginx(root / "fwd", minimal_conf(root / "fwd", FORWARDING_PORT,
                                                                               forwarding_headers(knet_conf)),
                                                     FORWARDING_PORT), FORWARDING_PORT)}
    assert all(get(port) == (200, str(BACKEND_PORTS[0])) for _, port in proxies.values())
    seconds, rounds = bench.pick(3, 10), bench.pick(3, 5)
    results: dict[str, list[WrkResult]] = {name: [] for name in proxies}
    cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in proxies}  # (proxy, backend) us per request
    switched: dict[str, list[float]] = {name: [] for name in proxies}  # the worker's preemptions per request
    order = list(proxies)
    for i in range(rounds):
        for name in order[i % len(order):] + order[:i % len(order)]:
            worker, port = proxies[name]
            before = cpu_seconds(worker), cpu_seconds(backend), preemptions(worker)
            results[name].append(run := _wrk(port, seconds))
            spent = cpu_seconds(worker) - before[0], cpu_seconds(backend) - before[1]
            switched[name].append((preemptions(worker) - before[2]) / max(run.requests, 1))
            cpu[name].append((spent[0] / max(run.requests, 1) * 1e6, spent[1] / max(run.requests, 1) * 1e6))
    for name, runs in results.items():
        assert all(r.requests > 0 and r.failed == 0 for r in runs), (name, runs)
    best = {name: max(runs, key=lambda r: r.rps) for name, runs in results.items()}
    p99 = {name: min(r.p99_seconds for r in runs) * 1000 for name, runs in results.items()}
    per = {name: tuple(statistics.median(c[i] for c in cpu[name]) for i in (0, 1)) for name in cpu}

    def ratio(a: str, b: str) -> tuple[float, str]:
        rounds_ = sorted(x.rps / y.rps for x, y in zip(results[a], results[b], strict=True))
        return statistics.median(rounds_), " ".join(f"{r:.2f}" for r in rounds_)

    for name in proxies:
        bench.record(f"{name}: {best[name].rps:.0f} req/s, p99 {p99[name]:.2f} ms; CPU per request (median) "
                     f"{per[name][0]:.1f} us + backend {per[name][1]:.1f} us, worker preempted "
                     f"{statistics.median(switched[name]) * 100:.0f} times per 100 requests (best of "
                     f"{rounds}x{seconds}s, 1 worker, 16 connections)")
    goal, each = ratio("knet", "minimal")
    bench.record(f"requests/s ratio knet/minimal: median {goal:.2f} of {each} (goal >= 0.95); p99 ratio "
                 f"minimal/knet: {p99['minimal'] / p99['knet']:.2f}; ratio of the CPU totals minimal/knet "
                 f"{sum(per['minimal']) / sum(per['knet']):.2f}")
    for a, b, what in (("knet, endpoints in the file", "minimal", "knet's config without the Lua balancer"),
                       ("knet", "knet, constant-peer balancer", "knet's balancer Lua against a constant peer"),
                       ("minimal + knet's headers", "minimal", "the forwarding headers alone"),
                       ("knet", "minimal + knet's headers", "knet's config, the same headers on both sides")):
        bench.record(f"  {what}: median {ratio(a, b)[0]:.2f} ({a} / {b})")


def test_reloads_during_endpoint_churn(bench, namespace: tuple[Namespace, Path]) -> None:
    """knet's controller with a real nginx: every endpoint change is a push, never a reload."""
    _, root = namespace
    steps = bench.pick(20, 100)
    proc = subprocess.run(in_ns(sys.executable, "-m", "bench.ingress_churn", str(root / "churn"), str(steps)),
                          capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    bench.record(f"endpoint churn, {steps} changes: {figures['reloads']:.0f} reloads (goal 0), "
                 f"{figures['pushes']:.0f} endpoint pushes, sync {figures['sync_ms_mean']:.1f} ms mean / "
                 f"{figures['sync_ms_max']:.1f} ms max, {figures['wrong']} steps answered by a removed endpoint")
    assert figures["reloads"] == 0 and figures["pushes"] == steps and figures["wrong"] == 0, figures
