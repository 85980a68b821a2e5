"""The DNS server over real UDP and TCP sockets on 127.0.0.1 (ephemeral ports), queried with dnslib."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import socket
import string
import struct
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from dns_builders import (
    FakeUpstream,
    endpoint,
    endpoint_slice,
    external,
    headless,
    service,
    silent_upstream,
    store_of,
)
from dnslib import EDNS0, QTYPE, RCODE, DNSHeader, DNSQuestion, DNSRecord

from operators.dns import server as dns_server
from operators.dns.config import parse_dns_config
from operators.dns.records import RecordStore
from operators.dns.server import DNSServer

Z = "default.svc.cluster.local"


class Running:
    """A DNSServer on its own event loop thread, so tests can use plain blocking sockets."""

    def __init__(self, objects: list[dict], spec: dict[str, Any], synced: bool = True, rate_limit: float = 0) -> None:
        config, problems = parse_dns_config({"spec": spec})
        assert problems == []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = RecordStore(config)
        for obj in objects:
            self.store.apply(obj)
        if synced:
            self.store.mark_synced()
        self.server = DNSServer(self.store, config, resolvers=(), rate_limit=rate_limit)
        self.port = self.call(self.server.start("127.0.0.1:0"))[1]
        self.http = self.call(self.server.start_http("127.0.0.1:0"))[1]

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.call(self.server.stop(lameduck=0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def raw(self, payload: bytes, tcp: bool = False, timeout: float = 2.0) -> bytes | None:
        if tcp:
            with socket.create_connection(("127.0.0.1", self.port), timeout) as sock:
                sock.sendall(struct.pack("!H", len(payload)) + payload)
                size = struct.unpack("!H", _recv(sock, 2))[0]
                return _recv(sock, size)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(payload, ("127.0.0.1", self.port))
            try:
                return sock.recv(65535)
            except TimeoutError:
                return None

    def ask(self, name: str, qtype: str = "A", tcp: bool = False, edns: int | None = None,
            timeout: float = 2.0) -> DNSRecord:
        query = DNSRecord.question(name, qtype)
        if edns is not None:
            query.add_ar(EDNS0(udp_len=edns))
        reply = self.raw(query.pack(), tcp, timeout)
        assert reply is not None, f"no reply to {name} {qtype}"
        return DNSRecord.parse(reply)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def rdata(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr]


CLUSTER = [
    service("web"),
    headless("big"),
    endpoint_slice("big", [endpoint(f"10.244.{i // 250}.{i % 250 + 1}") for i in range(120)]),
    external("search", "www.example.org"),
]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    yield fake
    fake.close()


@pytest.fixture
def running(upstream: FakeUpstream) -> Iterator[Running]:
    server = Running(CLUSTER, {"upstream": {"servers": [f"127.0.0.1:{upstream.port}"], "timeoutSeconds": 1}})
    yield server
    server.close()


def test_udp_and_tcp_answers(running: Running) -> None:
    for tcp in (False, True):
        reply = running.ask(f"web.{Z}", tcp=tcp)
        flags = (reply.header.rcode, reply.header.aa, reply.header.ra)
        assert (flags, rdata(reply)) == ((0, 1, 1), ["10.96.0.10"])
    missing = running.ask(f"nope.{Z}")
    assert missing.header.rcode == RCODE.NXDOMAIN
    assert [QTYPE.get(rr.rtype) for rr in missing.auth] == ["SOA"]


def test_truncation_and_tcp_fallback(running: Running) -> None:
    plain = running.ask(f"big.{Z}")
    assert plain.header.tc == 1 and plain.rr == []
    full = running.ask(f"big.{Z}", tcp=True)
    assert full.header.tc == 0 and len(full.rr) == 120


def test_edns0_buffer_size_is_advertised_and_honoured(running: Running) -> None:
    small = running.ask(f"big.{Z}", edns=1232)
    assert small.header.tc == 1  # 120 A records do not fit 1232 bytes
    query = DNSRecord.question(f"big.{Z}")
    query.add_ar(EDNS0(udp_len=4096))
    wire = running.raw(query.pack()) or b""  # never more than we advertise: no 75x amplification
    large = DNSRecord.parse(wire)
    assert large.header.tc == 1 and len(wire) <= 1232
    [opt] = [rr for rr in large.ar if rr.rtype == QTYPE.OPT]
    assert opt.rclass == 1232
    tiny = running.ask(f"web.{Z}", edns=100)  # below 512 counts as 512
    assert rdata(tiny) == ["10.96.0.10"]


def test_udp_answers_over_a_sources_rate_are_dropped() -> None:
    server = Running(CLUSTER, {}, rate_limit=3)
    try:
        answers = [server.raw(DNSRecord.question(f"web.{Z}").pack(), timeout=0.3) for _ in range(5)]
        assert [a is not None for a in answers] == [True] * 3 + [False] * 2
        assert server.ask(f"web.{Z}", tcp=True).rr, "TCP proves its source: not limited"
    finally:
        server.close()


def test_unknown_edns_version_is_badvers(running: Running) -> None:
    query = DNSRecord.question(f"web.{Z}")
    query.add_ar(EDNS0(udp_len=1232, version=1))
    reply = DNSRecord.parse(running.raw(query.pack()))
    [opt] = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
    assert (opt.ttl >> 24, reply.header.rcode, reply.rr) == (1, 0, [])  # extended rcode 16: BADVERS


def _name_too_long() -> bytes:
    labels = b"".join(bytes([63]) + b"a" * 63 for _ in range(5))
    return struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", 1, 1)


def _pointer_loop() -> bytes:
    return struct.pack("!HHHHHH", 8, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack("!HH", 1, 1)


def test_a_compression_pointer_loop_is_refused_before_dnslib_parses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []

    class Counting(DNSRecord):
        @classmethod
        def parse(cls, packet: bytes) -> DNSRecord:
            parsed.append(packet)
            return DNSRecord.parse(packet)

    monkeypatch.setattr("operators.dns.server.DNSRecord", Counting)
    reply = asyncio.run(DNSServer(store_of(), resolvers=[]).handle(_pointer_loop(), ("127.0.0.1", 1), "udp"))
    assert DNSRecord.parse(reply).header.rcode == RCODE.FORMERR and parsed == []


def test_malformed_packets_never_crash(running: Running) -> None:
    assert running.raw(b"\x00\x01", timeout=0.3) is None  # shorter than a header: dropped
    response = DNSRecord.question(f"web.{Z}").reply().pack()
    assert running.raw(response, timeout=0.3) is None  # a response: never answered
    assert DNSRecord.parse(running.raw(_name_too_long())).header.rcode == RCODE.FORMERR
    assert DNSRecord.parse(running.raw(_pointer_loop())).header.rcode == RCODE.FORMERR
    two = DNSRecord(DNSHeader(id=9), questions=[DNSQuestion("a.example"), DNSQuestion("b.example")])
    assert DNSRecord.parse(running.raw(two.pack())).header.rcode == RCODE.FORMERR
    notify = DNSRecord(DNSHeader(id=10, opcode=4), q=DNSQuestion(f"web.{Z}"))
    assert DNSRecord.parse(running.raw(notify.pack())).header.rcode == RCODE.NOTIMP
    chaos = DNSRecord.question("version.bind", "TXT", "CH")
    assert DNSRecord.parse(running.raw(chaos.pack())).header.rcode == RCODE.REFUSED
    assert running.ask("cluster.local", "AXFR").header.rcode == RCODE.REFUSED
    labels = (b"a.b\x00", b"default", b"svc", b"cluster", b"local")  # a dot and a NUL inside a label
    weird = DNSRecord(DNSHeader(id=11, rd=1), q=DNSQuestion(labels))
    assert DNSRecord.parse(running.raw(weird.pack())).header.rcode == RCODE.NXDOMAIN
    rng = random.Random(7)
    for _ in range(300):
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(12, 200)))
        garbage = garbage[:2] + bytes([garbage[2] & 0x7F]) + garbage[3:]  # a query, so it deserves a reply
        reply = running.raw(garbage, timeout=1)
        assert reply is not None and reply[:2] == garbage[:2]
    assert running.raw(_pointer_loop(), tcp=True)[3] & 0xF == RCODE.FORMERR
    assert rdata(running.ask(f"web.{Z}")) == ["10.96.0.10"]  # still serving


def _tcp_query(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A connection from `source` that has sent one query."""
    sock = socket.create_connection(("127.0.0.1", port), 2, source_address=(source, 0))
    query = DNSRecord.question(f"web.{Z}").pack()
    sock.sendall(struct.pack("!H", len(query)) + query)
    return sock


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection without a reply (a reset when our query was unread)."""
    try:
        return sock.recv(2) == b""
    except ConnectionResetError:
        return True


def test_one_address_cannot_take_every_tcp_slot(running: Running) -> None:
    held = [_tcp_query(running.port) for _ in range(dns_server.MAX_TCP_PER_SOURCE)]
    try:
        assert all(_recv(s, 2) for s in held)  # answered, and kept open
        with _tcp_query(running.port) as one_too_many:
            assert _closed(one_too_many)
        with _tcp_query(running.port, "127.0.0.2") as another_client:
            assert _recv(another_client, 2)
    finally:
        for s in held:
            s.close()


def test_idle_tcp_connections_are_closed(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dns_server, "TCP_IDLE", 0.2)
    with socket.create_connection(("127.0.0.1", running.port), 2) as idle:
        assert _closed(idle)


def test_any_is_answered_minimally(running: Running, upstream: FakeUpstream) -> None:
    reply = running.ask(f"web.{Z}", "ANY")
    assert [QTYPE.get(rr.rtype) for rr in reply.rr] == ["HINFO"] and reply.header.rcode == 0
    assert running.ask(f"nope.{Z}", "ANY").header.rcode == RCODE.NXDOMAIN
    outside = running.ask("example.com", "ANY")
    assert [QTYPE.get(rr.rtype) for rr in outside.rr] == ["HINFO"]
    assert upstream.queries == []  # ANY is never forwarded


def test_forwarding_and_cache(running: Running, upstream: FakeUpstream) -> None:
    first = running.ask("www.example.com")
    assert (first.header.rcode, first.header.aa, rdata(first)) == (0, 0, ["10.0.0.1"])
    again = running.ask("WWW.example.com")
    assert rdata(again) == ["10.0.0.1"] and again.rr[0].ttl <= 30  # capped by successTTL
    assert upstream.queries == [("udp", "www.example.com.")]  # the second came from the cache
    denied = running.ask("x.missing")
    assert denied.header.rcode == RCODE.NXDOMAIN and [QTYPE.get(r.rtype) for r in denied.auth] == ["SOA"]
    running.ask("x.missing")
    assert upstream.queries.count(("udp", "x.missing.")) == 1  # negative answers are cached too
    big = running.ask("big.example.net", tcp=True)
    assert len(big.rr) == 40
    assert ("tcp", "big.example.net.") in upstream.queries  # the upstream truncated: TCP fallback


def test_external_name_is_completed_upstream(running: Running) -> None:
    reply = running.ask(f"search.{Z}")
    assert [QTYPE.get(rr.rtype) for rr in reply.rr] == ["CNAME", "A"]
    assert rdata(reply) == ["www.example.org.", "10.0.0.1"]


def test_unreachable_upstream_does_not_stop_cluster_answers() -> None:
    silent = silent_upstream()
    running = Running(CLUSTER, {"upstream": {"servers": [f"127.0.0.1:{silent.getsockname()[1]}"],
                                             "timeoutSeconds": 1}})
    try:
        with ThreadPoolExecutor(4) as pool:
            pending = [pool.submit(running.ask, f"slow{i}.example.com", timeout=5) for i in range(3)]
            time.sleep(0.1)  # the forwards are now waiting on the silent upstream
            started = time.perf_counter()
            for _ in range(20):
                assert rdata(running.ask(f"web.{Z}")) == ["10.96.0.10"]
            assert time.perf_counter() - started < 0.5
            assert all(not f.done() for f in pending)
            assert [f.result().header.rcode for f in pending] == [RCODE.SERVFAIL] * 3
    finally:
        running.close()
        silent.close()


def test_stub_domains_use_their_own_upstream(upstream: FakeUpstream) -> None:
    stub = FakeUpstream("10.5.5.1")
    stubs = [{"domain": "corp.example", "servers": [f"127.0.0.1:{stub.port}"]}]
    running = Running([], {"upstream": {"servers": [f"127.0.0.1:{upstream.port}"]}, "stubDomains": stubs})
    try:
        assert rdata(running.ask("db.corp.example")) == ["10.5.5.1"]
        assert rdata(running.ask("db.other.example")) == ["10.0.0.1"]
        assert [q for _, q in stub.queries] == ["db.corp.example."]
    finally:
        running.close()
        stub.close()


def test_acl_hosts_rewrites_and_query_log(upstream: FakeUpstream, caplog: pytest.LogCaptureFixture) -> None:
    spec = {
        "upstream": {"servers": [f"127.0.0.1:{upstream.port}"]},
        "acl": [{"action": "deny", "sources": ["127.0.0.0/8"], "zones": ["blocked.example"]},
                {"action": "deny", "sources": ["127.0.0.0/8"], "types": ["TXT"]}],
        "hosts": [{"ip": "10.9.9.9", "hostnames": ["registry.example"]}],
        "rewrites": [{"match": "exact", "from": "web.example", "to": f"web.{Z}"}],
        "queryLog": True,
    }
    running = Running([service("web")], spec)
    try:
        assert running.ask("x.blocked.example").header.rcode == RCODE.REFUSED
        assert running.ask(f"web.{Z}", "TXT").header.rcode == RCODE.REFUSED
        hosted = running.ask("registry.example")
        assert (rdata(hosted), hosted.header.aa, hosted.rr[0].ttl) == (["10.9.9.9"], 1, 3600)
        assert running.ask("registry.example", "AAAA").rr == []
        with caplog.at_level(logging.INFO, logger="knet.dns.query"):
            rewritten = running.ask("WEB.example")
        assert rdata(rewritten) == ["10.96.0.10"]
        assert [str(rr.rname) for rr in rewritten.rr] == ["WEB.example."]  # the name the client asked
        assert any('"A IN WEB.example. udp' in r.getMessage() and "NOERROR qr,aa,rd,ra" in r.getMessage()
                   for r in caplog.records)
        assert upstream.queries == []
    finally:
        running.close()


def test_health_ready_metrics_and_lameduck(upstream: FakeUpstream) -> None:
    spec = {"upstream": {"servers": [f"127.0.0.1:{upstream.port}"]}}
    running = Running([service("web")], spec, synced=False)
    try:
        assert running.get("/health") == (200, "OK\n")
        assert running.get("/ready")[0] == 503
        running.store.mark_synced()
        assert running.get("/ready") == (200, "OK\n")
        running.ask(f"web.{Z}")
        running.ask("www.example.com")
        running.ask("www.example.com")
        status, text = running.get("/metrics")
        assert status == 200
        assert 'knet_dns_requests_total{proto="udp",rcode="NOERROR",type="A"} 3.0' in text
        assert "knet_dns_cache_hits_total 1.0" in text and "knet_dns_cache_misses_total 1.0" in text
        assert 'knet_dns_objects{kind="services"} 1.0' in text
        assert 'knet_dns_request_duration_seconds_count{source="cluster"} 1.0' in text
        assert running.get("/nope")[0] == 404
        stopping = asyncio.run_coroutine_threadsafe(running.server.stop(lameduck=0.5), running.loop)
        time.sleep(0.1)
        assert running.get("/health")[0] == 503  # lameduck: unhealthy, but still answering
        assert rdata(running.ask(f"web.{Z}")) == ["10.96.0.10"]
        stopping.result(5)
    finally:
        running.loop.call_soon_threadsafe(running.loop.stop)
        running.thread.join(5)


def _random_name(rng: random.Random, suffix: str) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=20)) + suffix


def test_flood_of_random_names_keeps_memory_bounded() -> None:
    """Random names in and out of the cluster zone: after warm-up, memory stays flat batch after batch."""
    silent = silent_upstream()
    fake = FakeUpstream()
    config, _ = parse_dns_config({"spec": {
        "upstream": {"servers": [f"127.0.0.1:{silent.getsockname()[1]}"], "maxConcurrent": 20,
                     "timeoutSeconds": 0.2},
        "stubDomains": [{"domain": "fast.example", "servers": [f"127.0.0.1:{fake.port}"]}],
        "cache": {"size": 10},
    }})
    store = RecordStore(config)
    store.apply(service("web"))
    server = DNSServer(store, config, resolvers=())
    rng = random.Random(1)
    qtypes = ["A", "AAAA", "SRV", "TXT", "MX", "TYPE65280"]

    async def batch(i: int) -> int:
        names = [_random_name(rng, ".default.svc.cluster.local") for _ in range(200)]
        names += [_random_name(rng, ".example.com") for _ in range(60)]
        names += [_random_name(rng, f"{'.missing' if i % 2 else ''}.fast.example") for _ in range(30)]
        replies = await asyncio.gather(*(server.handle(DNSRecord.question(n, rng.choice(qtypes)).pack(),
                                                       ("127.0.0.1", 5353), "udp") for n in names))
        return [DNSRecord.parse(r).header.rcode for r in replies].count(RCODE.REFUSED)

    async def flood() -> tuple[list[int], int]:
        refused = await batch(0) + await batch(1)  # warm-up: caches fill, lazy state is created
        tracemalloc.start()
        sizes = []
        for i in range(2, 6):
            refused += await batch(i)
            gc.collect()  # failed forwards leave reference cycles (tracebacks) behind until collected
            sizes.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        return sizes, refused

    try:
        sizes, refused = asyncio.run(flood())
        assert refused > 0  # beyond maxConcurrent, forwards are refused at once rather than queued
        assert len(server.forwarder.cache) <= 20  # two LRU maps of cache.size each
        assert server.forwarder._inflight == {}
        assert sizes[-1] - sizes[0] < 150_000, f"memory grew {sizes} over 870 random queries"
    finally:
        silent.close()
        fake.close()


def test_a_wildcard_listener_replies_from_the_address_it_was_asked() -> None:
    """A node has many addresses: the reply must come from the one the client asked, or it is dropped;
    also when the reply is a packed one and the previous query went to another address."""
    async def main() -> list[list[str]]:
        server = DNSServer(store_of(service("web")), resolvers=[])
        _, port = await server.start("0.0.0.0:0")
        loop, answers = asyncio.get_running_loop(), []
        try:
            for destination in ("127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                    client.bind(("127.0.0.1", 0))
                    client.connect((destination, port))  # a connected socket takes replies from there only
                    client.setblocking(False)
                    await loop.sock_sendall(client, DNSRecord.question("web.default.svc.cluster.local").pack())
                    reply = DNSRecord.parse(await asyncio.wait_for(loop.sock_recv(client, 4096), 2))
                    answers.append([str(rr.rdata) for rr in reply.rr])
            return answers
        finally:
            await server.stop(lameduck=0)

    assert asyncio.run(main()) == [["10.96.0.10"]] * 4


def test_repeated_questions_are_answered_from_packed_replies_until_the_store_changes() -> None:
    store = store_of(service("web"))
    server = DNSServer(store, resolvers=[])
    question = DNSRecord.question("Web.default.svc.cluster.local")

    async def ask_as(qid: int) -> DNSRecord:
        question.header.id = qid
        return DNSRecord.parse(await server.handle(question.pack(), ("127.0.0.1", 1), "udp"))

    first, second = asyncio.run(ask_as(1)), asyncio.run(ask_as(2))
    assert (first.header.id, second.header.id) == (1, 2)
    assert str(second.q.qname) == "Web.default.svc.cluster.local."  # the client's spelling, from the cache
    assert [str(rr.rdata) for rr in second.rr] == ["10.96.0.10"]
    assert len(server._answers) == 1
    store.apply(service("web", ips=("10.96.0.11",)))
    assert [str(rr.rdata) for rr in asyncio.run(ask_as(3)).rr] == ["10.96.0.11"]


def test_cached_upstream_answers_are_reused_packed_while_their_ttls_hold(
        upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upstream answer from the cache is packed once and reused, its TTLs lowered as it ages, until
    the cache entry expires."""
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    config, _ = parse_dns_config({"spec": {"upstream": {"servers": [f"127.0.0.1:{upstream.port}"]}}})
    server = DNSServer(RecordStore(config), config, resolvers=())
    question = DNSRecord.question("www.example.com")

    async def ttls() -> list[int]:
        seen = []
        for qid, advance in enumerate((0, 0, 0.4, 0.7, 0)):
            clock[0] += advance
            question.header.id = qid
            reply = DNSRecord.parse(await server.handle(question.pack(), ("127.0.0.1", 1), "udp"))
            assert reply.header.id == qid and rdata(reply) == ["10.0.0.1"]
            seen.append(reply.rr[0].ttl)
        return seen

    assert asyncio.run(ttls()) == [60, 30, 30, 29, 29]  # upstream, cache (successTTL), packed, packed aged
    assert upstream.queries == [("udp", "www.example.com.")]
    assert [p.age for p in server._answers.values()] == [1]  # the packed reply was aged, not packed again
    clock[0] += 30  # past successTTL: the cache entry and the packed reply expire together
    question.header.id = 9
    asyncio.run(server.handle(question.pack(), ("127.0.0.1", 1), "udp"))
    assert len(upstream.queries) == 2
