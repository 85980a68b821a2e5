"""Offline DNS: objects from YAML -> a store, a running server (`knet dns`) and a Corefile."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import yaml
from dns_builders import endpoint, endpoint_slice, headless, pod, service
from dnslib import QTYPE, DNSRecord

from operators.dns.offline import config_from_objects, render_corefile, serve, store_from_objects
from operators.kube.objects import load_objects

CONFIG = {"apiVersion": "knet.io/v1alpha1", "kind": "DNSConfig", "metadata": {"name": "default"},
          "spec": {"podRecords": "verified", "ttl": 30}}


def _objects(tmp_path: Path) -> list[dict]:
    path = tmp_path / "objects.yaml"
    listed = {"apiVersion": "v1", "kind": "List", "items": [service("api", ips=("10.96.0.11",))]}
    docs = [CONFIG, service("web"), headless("db"), endpoint_slice("db", [endpoint("10.244.0.5", "db-0")]),
            pod("db-0", ["10.244.0.5"]), listed]
    path.write_text(yaml.safe_dump_all(docs))
    return load_objects([path])


def test_store_and_config_from_objects(tmp_path: Path) -> None:
    objects = _objects(tmp_path)
    config, problems = config_from_objects(objects)
    assert problems == [] and config.pod_records == "verified" and config.ttl == 30
    store, problems = store_from_objects(objects, config)
    assert problems == [] and store.synced
    assert store.stats() == {"services": 3, "endpoint_slices": 1, "endpoints": 1, "pods": 1}
    found = store.lookup("api.default.svc.cluster.local", QTYPE.A)
    assert [str(r.rdata) for r in found.answer] == ["10.96.0.11"]
    assert store.lookup("10-244-0-5.default.pod.cluster.local", QTYPE.A).answer[0].ttl == 30


def test_render_corefile_reports_problems() -> None:
    text, problems = render_corefile([{**CONFIG, "spec": {"ttl": "soon"}}])
    assert "ttl 5\n" in text
    assert problems == ["DNSConfig default: ttl 'soon' is not a number in 0-3600; using 5"]


def test_serve_answers_until_cancelled(tmp_path: Path) -> None:
    objects = _objects(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def run() -> list[str]:
        task = asyncio.create_task(serve(objects, f"127.0.0.1:{port}", resolvers=()))
        loop = asyncio.get_running_loop()
        query = DNSRecord.question("db-0.db.default.svc.cluster.local").pack()
        reply = await loop.run_in_executor(None, _udp, query, port)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return [str(r.rdata) for r in DNSRecord.parse(reply).rr]

    assert asyncio.run(run()) == ["10.244.0.5"]


def _udp(query: bytes, port: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        for _ in range(25):  # until the server listens
            sock.sendto(query, ("127.0.0.1", port))
            try:
                return sock.recv(4096)
            except TimeoutError:
                continue
    raise AssertionError("no answer")
