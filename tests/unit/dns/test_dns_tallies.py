"""The answer path's tallies expose what prometheus_client's own Counter and Histogram expose."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from operators.dns.metrics import LATENCY_BUCKETS
from operators.dns.tallies import Counts, Spreads

VALUES = (0.0001, 0.00025, 0.0003, 0.002, 0.002, 0.7, 9.0)


def exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_tallies_read_as_prometheus_clients_metrics() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counts, spreads = Counts("x_requests", "Requests", ["proto"]), Spreads("x_seconds", "Time", ["source"],
                                                                            LATENCY_BUCKETS)
    ours.register(counts)  # type: ignore[arg-type]
    ours.register(spreads)  # type: ignore[arg-type]
    counter = Counter("x_requests", "Requests", ["proto"], registry=theirs)
    histogram = Histogram("x_seconds", "Time", ["source"], buckets=LATENCY_BUCKETS, registry=theirs)
    for value in VALUES:
        counts.labels(proto="udp").inc()
        counter.labels(proto="udp").inc()
        spreads.labels(source="cache").observe(value)
        histogram.labels(source="cache").observe(value)
    counts.labels(proto="tcp").inc(2)
    counter.labels(proto="tcp").inc(2)
    assert exposition(ours) == exposition(theirs)
