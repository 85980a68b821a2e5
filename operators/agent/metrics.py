"""The agent's Prometheus metrics, in their own registry (so tests and several agents do not collide).

Names follow kube-proxy's where one exists (`..._sync_proxy_rules_duration_seconds`,
`..._network_programming_duration_seconds`, `..._last_timestamp_seconds`), under `knet_proxy_`.
Every label has a small fixed set of values.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SYNC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
ERROR_KINDS = ("nft", "iptables", "table-missing", "conntrack", "event", "healthcheck", "sync")
OBJECT_KINDS = ("Service", "EndpointSlice", "Node", "ClusterNetworkConfig")


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.sync_duration = Histogram(
            "knet_proxy_sync_proxy_rules_duration_seconds",
            "Time to build, render and apply the rules, by kind of sync (full or incremental)",
            ["kind"], buckets=SYNC_BUCKETS, registry=r)
        self.last_sync = Gauge("knet_proxy_sync_proxy_rules_last_timestamp_seconds",
                               "When the rules were last programmed successfully (Unix time)", registry=r)
        self.programming_latency = Histogram(
            "knet_proxy_network_programming_duration_seconds",
            "From an EndpointSlice change (its last-change-trigger-time) to the rules being in the kernel",
            buckets=LATENCY_BUCKETS, registry=r)
        self.services = Gauge("knet_proxy_services", "Services programmed on this node", registry=r)
        self.service_ports = Gauge("knet_proxy_service_ports", "Service ports (per IP family) programmed",
                                   registry=r)
        self.endpoints = Gauge("knet_proxy_endpoints", "Endpoints (per Service port) that traffic may be sent to",
                               registry=r)
        self.errors = Counter("knet_proxy_errors", "Failures, by kind: nft or iptables transaction, rules removed by "
                              "someone else, conntrack, Event posting, health-check port, sync loop",
                              ["kind"], registry=r)
        self.problems = Counter("knet_proxy_object_problems", "New problems found in objects (skipped or "
                                "partly programmed), by kind of object", ["kind"], registry=r)
        self.objects_with_problems = Gauge("knet_proxy_objects_with_problems",
                                           "Objects that currently have problems, by kind", ["kind"], registry=r)
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        for kind in OBJECT_KINDS:
            self.problems.labels(kind)
            self.objects_with_problems.labels(kind)
