"""Offline: what one endpoint change costs each step of the agent's incremental sync, at N Services.

`python -m bench.proxy_sync_steps 30000` fills the agent's store (`ProxyStore`) with N Services of one
port and one EndpointSlice of 10 endpoints each (on this node, as in bench/test_proxy_bench.py), builds
and renders them once, then moves one slice between two target ports 20 times and prints, per step of
the sync, the median and the slowest CPU time (process time: the machine's other load counts less):
taking the change set and the views, the model, the rules and their diff, the counts the agent reports,
conntrack's stale flows, and the status reporter's scan of the announced ports. No API server, no kernel.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections.abc import Iterator
from typing import Any

from operators.agent import conntrack
from operators.agent.store import ProxyStore, node_entry
from operators.kube.informer import Index
from operators.nft import table as nft_table
from operators.proxy import nftables
from operators.proxy.model import build_model

NODE = "n1"
CHANGES = 20


def _ip(i: int, j: int) -> str:
    n = i * 10 + j
    return f"10.{245 + n // 65536}.{n // 256 % 256}.{n % 256}"


def service(i: int) -> dict[str, Any]:
    ip = f"10.{96 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"s{i}", "namespace": "bench", "uid": f"u{i}", "resourceVersion": "1",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def endpoint_slice(i: int, port: int = 8080) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}-1", "namespace": "bench", "uid": f"e{i}", "resourceVersion": "1",
                         "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [_ip(i, j)], "nodeName": NODE, "conditions": {"ready": True}}
                          for j in range(10)]}


def main(n: int) -> None:
    nodes = Index(node_entry)
    nodes.handle("ADDED", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "uid": "n"},
                           "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}})
    store = ProxyStore(nodes)
    for i in range(n):
        store.services.handle("ADDED", service(i))
        store.slices.handle("ADDED", endpoint_slice(i))
    store.take()
    cache = nftables.RenderCache()
    build = build_model(store.views(), NODE)
    rules = nftables.build_ruleset(build.model, cache)
    gc.freeze()  # as the agent does after a full sync
    times: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def timed(name: str) -> Iterator[None]:
        start = time.process_time()
        yield
        times.setdefault(name, []).append((time.process_time() - start) * 1000)

    for k in range(CHANGES):
        store.slices.handle("MODIFIED", endpoint_slice(7, 8081 + k % 2))
        with timed("change set and views"):
            changes, views, _ = store.take(), store.views(), store.problems()
        with timed("model"):
            new = build_model(views, NODE, None, build, changes)
        with timed("rules and diff"):
            new_rules = nftables.build_ruleset(new.model, cache)
            nft_table.diff(rules, new_rules)
        with timed("counts"):
            _ = new.model.service_count, new.model.endpoint_count
        with timed("conntrack"):
            conntrack.stale_flows(build.ports_of(new.changed or ()), new.ports_of(new.changed or ()))
        with timed("announced ports"):
            _ = new.model.balanced_ports
        build, rules = new, new_rules
    print(f"{n} Services, one endpoint change, CPU ms per sync step (median / slowest of {CHANGES}):")
    for name, values in times.items():
        values.sort()
        print(f"  {name:22s} {values[len(values) // 2]:7.2f} / {values[-1]:7.2f}")
    print(f"  {'total (medians)':22s} {sum(sorted(v)[len(v) // 2] for v in times.values()):7.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30000)
