"""Prometheus metrics of the DNS server, and its small HTTP endpoint: /health, /ready, /metrics.

Every label has a bounded set of values (query types outside a fixed list count as "other"), so a
flood of odd queries cannot grow the metrics. Each server has its own registry, so tests and
several servers in one process do not collide.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from dnslib import QTYPE, RCODE
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
    generate_latest,
)

from operators.dns.tallies import Counts, Spreads

TYPES = frozenset({"A", "AAAA", "SRV", "PTR", "TXT", "CNAME", "NS", "SOA", "MX", "ANY", "HTTPS", "SVCB",
                   "CAA"})
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def type_label(qtype: int) -> str:
    name = QTYPE.get(qtype)
    return name if name in TYPES else "other"


def rcode_label(rcode: int) -> str:
    return RCODE.get(rcode) if rcode in RCODE.forward else "other"


class Metrics:
    """The DNS server's counters and histograms, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counts("knet_dns_requests", "DNS requests answered, by transport, query type and "
                               "response code", ["proto", "type", "rcode"])
        self.duration = Spreads("knet_dns_request_duration_seconds", "Time to answer a request, by where "
                                "the answer came from", ["source"], LATENCY_BUCKETS)
        r.register(self.requests)  # type: ignore[arg-type]  # collectors by their collect()
        r.register(self.duration)  # type: ignore[arg-type]
        self.dropped = Counter("knet_dns_dropped", "Packets dropped unanswered (unparsable, responses, "
                               "overload, ratelimit) and TCP connections closed unanswered (tcp-per-source)",
                               ["reason"], registry=r)
        self.cache_hits = Counter("knet_dns_cache_hits", "Upstream answers served from the cache", registry=r)
        self.cache_misses = Counter("knet_dns_cache_misses", "Forwarded questions not in the cache",
                                    registry=r)
        self.cache_entries = Gauge("knet_dns_cache_entries", "Answers held in the cache", registry=r)
        self.forward_requests = Counter("knet_dns_forward_requests", "Exchanges with upstream servers",
                                        ["upstream"], registry=r)
        self.forward_errors = Counter("knet_dns_forward_errors", "Failed upstream exchanges, by reason",
                                      ["upstream", "reason"], registry=r)
        self.objects = Gauge("knet_dns_objects", "Objects in the record store", ["kind"], registry=r)
        ProcessCollector(registry=r)  # process_resident_memory_bytes & co., as CoreDNS exports them


class HealthServer:
    """/health (503 once lameduck starts), /ready (200 once `ready()`), /metrics."""

    def __init__(self, metrics: Metrics, ready: Callable[[], bool],
                 before_scrape: Callable[[], None]) -> None:
        self.metrics = metrics
        self.ready = ready
        self.before_scrape = before_scrape
        self.lameduck = False
        self._servers: list[asyncio.Server] = []

    async def start(self, host: str, port: int) -> int:
        """Serve all three paths on one more port (a chart may give health, ready and metrics their own)."""
        server = await asyncio.start_server(self._client, host, port, limit=8192)
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    def _route(self, path: str) -> tuple[int, str, bytes]:
        if path == "/health":
            return (503, "text/plain", b"lameduck\n") if self.lameduck else (200, "text/plain", b"OK\n")
        if path == "/ready":
            return (200, "text/plain", b"OK\n") if self.ready() else (503, "text/plain", b"not synced\n")
        if path == "/metrics":
            self.before_scrape()
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
        return 404, "text/plain", b"not found\n"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            parts = request.split(b"\r\n", 1)[0].decode("latin-1").split()
            method = parts[0] if parts else ""
            path = parts[1].split("?")[0] if len(parts) == 3 and method in ("GET", "HEAD") else ""
            status, ctype, body = self._route(path) if path else (400, "text/plain", b"bad request\n")
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 503: "Service Unavailable"}[status]
            head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n" \
                   "Connection: close\r\n\r\n"
            writer.write(head.encode() + (body if method == "GET" else b""))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
