"""Ingress benchmark (issue 7): render time with 100 and 1k Ingresses; requests per second and p99
latency through knet's rendered config vs a minimal hand-written config for the same route (goal: ratio
>= 0.95, printed) and vs Traefik (issue 25: goal 1.5x per core, printed); nginx reloads during endpoint
churn through knet's controller (goal: 0, asserted, as every answer during the churn must come from a
current endpoint)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.ingress_nginx import (
    BACKEND_PORTS,
    FORWARDING_PORT,
    KNET_CONSTANT_PORT,
    KNET_PORT,
    KNET_STATIC_PORT,
    MINIMAL_PORT,
    Namespace,
    bench_objects,
    constant_balancer,
    forwarding_headers,
    in_ns,
    knet_runtime,
    minimal_conf,
)
from bench.ingress_rounds import Proxy, against_traefik, measure
from operators.ingress import files
from operators.ingress.certs import self_signed
from operators.ingress.offline import model_from_objects
from operators.ingress.render import render_config

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


def test_proxy_throughput_vs_minimal_config(bench, ingress_namespace: tuple[Namespace, Path],
                                            traefik: Path | None) -> None:
    """wrk through each proxy in turn, several rounds (`bench.ingress_rounds`: one core each, beside the
    backend). The goal compares knet's config (the controller's: endpoints pushed to the Lua balancer) with
    the minimal one; three more configs split the difference: knet's with its endpoints in the file (no Lua
    per request), knet's with a balancer that sets one constant peer (the Lua framework without knet's Lua)
    and the minimal one with knet's forwarding headers. Traefik (file provider, the same route) is the
    upstream anchor: knet's requests/s per core against its (goal >= 1.5), and the p99s. Also printed: the
    CPU time per request of each proxy and of the backend (which parses the headers each proxy adds), and
    how often the backend preempted the proxy."""
    ns, root = ingress_namespace
    model, _ = model_from_objects(bench_objects(BACKEND_PORTS[:1]))
    knet_worker, knet_conf = ns.knet(root / "knet", model)
    proxies = {"knet": Proxy(knet_worker, KNET_PORT),
               "minimal": Proxy(ns.nginx(root / "minimal", minimal_conf(root / "minimal"), MINIMAL_PORT), MINIMAL_PORT),
               "knet, endpoints in the file": Proxy(ns.knet(root / "static", model, False, KNET_STATIC_PORT)[0],
                                                    KNET_STATIC_PORT),
               "knet, constant-peer balancer": Proxy(ns.knet(root / "const", model, True, KNET_CONSTANT_PORT,
                                                             constant_balancer)[0], KNET_CONSTANT_PORT),
               "minimal + knet's headers": Proxy(ns.nginx(root / "fwd", minimal_conf(root / "fwd", FORWARDING_PORT,
                                                                                    forwarding_headers(knet_conf)),
                                                          FORWARDING_PORT), FORWARDING_PORT)}
    rounds = measure(bench, ns, root, proxies, traefik, bench.pick(3, 5))
    goal, each = rounds.ratio("knet", "minimal")
    bench.record(f"requests/s ratio knet/minimal: median {goal:.2f} of {each} (goal >= 0.95); p99 ratio "
                 f"minimal/knet: {rounds.p99_ms('minimal') / rounds.p99_ms('knet'):.2f}; ratio of the CPU totals "
                 f"minimal/knet {sum(rounds.per_request('minimal')) / sum(rounds.per_request('knet')):.2f}")
    for a, b, what in (("knet, endpoints in the file", "minimal", "knet's config without the Lua balancer"),
                       ("knet", "knet, constant-peer balancer", "knet's balancer Lua against a constant peer"),
                       ("minimal + knet's headers", "minimal", "the forwarding headers alone"),
                       ("knet", "minimal + knet's headers", "knet's config, the same headers on both sides")):
        bench.record(f"  {what}: median {rounds.ratio(a, b)[0]:.2f} ({a} / {b})")
    if traefik is not None:
        bench.record(against_traefik(rounds, "knet"))


def test_reloads_during_endpoint_churn(bench, ingress_namespace: tuple[Namespace, Path]) -> None:
    """knet's controller with a real nginx: every endpoint change is a push, never a reload."""
    _, root = ingress_namespace
    steps = bench.pick(20, 100)
    proc = subprocess.run(in_ns(sys.executable, "-m", "bench.ingress_churn", str(root / "churn"), str(steps)),
                          capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    bench.record(f"endpoint churn, {steps} changes: {figures['reloads']:.0f} reloads (goal 0), "
                 f"{figures['pushes']:.0f} endpoint pushes, sync {figures['sync_ms_mean']:.1f} ms mean / "
                 f"{figures['sync_ms_max']:.1f} ms max, {figures['wrong']} steps answered by a removed endpoint")
    assert figures["reloads"] == 0 and figures["pushes"] == steps and figures["wrong"] == 0, figures
