"""knet's cluster DNS server: asyncio UDP + TCP with dnslib, answering from the record store.

A query goes through the steps CoreDNS's plugin chain takes in knet's Corefile:
parse -> acl -> rewrite -> hosts -> ANY (RFC 8482) -> cluster zones (the store) -> forward (cache,
stub domains, upstreams), then EDNS0 and truncation.

Robustness rules: nothing a client sends may raise out of `handle`. Unparsable packets, and queries
with a compression pointer or records a query never has (`wire.safe_query`, before dnslib parses them),
get FORMERR when their header can be read and are dropped otherwise; responses (QR set) are never answered;
names over 253 bytes or with labels over 63 get FORMERR; zone transfers and non-IN classes are
refused; ANY gets one HINFO record (RFC 8482) and is never forwarded. Work is bounded: at most
MAX_PENDING queries are answered at once (more UDP packets are dropped), MAX_TCP_CONNECTIONS TCP
clients and MAX_TCP_PER_SOURCE from one address (so that one client cannot take every slot and lock
the others out), idle TCP connections close after TCP_IDLE seconds, and the forwarder bounds the rest.

Over UDP the reply fits the client's EDNS0 buffer, and never more than the 1232 bytes we advertise
(512 without EDNS0): larger UDP answers would make the server an amplifier (and fragment). The
additional section goes first, then the answer is emptied and TC is set so the client retries over
TCP. Replies to EDNS0 queries carry our own OPT record (1232 bytes, DO copied). With `rate_limit`
(responses per second, off by default), each UDP source address gets at most that many answers
(`ratelimit.py`); TCP needs no limit, its handshake proves the source.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import time
from collections.abc import Coroutine, Sequence
from typing import Any, NamedTuple

from dnslib import CLASS, EDNS0, OPCODE, QTYPE, RCODE, RD, RR, DNSHeader, DNSLabel, DNSRecord

from operators.dns.config import DNSConfig, Server
from operators.dns.forward import ADVERTISED_UDP, Forwarder, ForwardError, cache_key, system_resolvers
from operators.dns.metrics import HealthServer, Metrics, rcode_label, type_label
from operators.dns.policy import Policy
from operators.dns.ratelimit import ResponseRateLimit
from operators.dns.records import RecordStore, label
from operators.dns.udp import UDPListener
from operators.dns.wire import aged, safe_query, ttl_offsets

log = logging.getLogger("knet.dns")
query_log = logging.getLogger("knet.dns.query")

MAX_PENDING = 10000
MAX_TCP_CONNECTIONS = 512
MAX_TCP_PER_SOURCE = 16
ANSWER_CACHE = 10000  # packed cluster answers kept for repeated questions
PROTO_KEYS = {"udp": b"udp", "tcp": b"tcp"}  # the first bytes of a packed reply's key
TCP_IDLE = 10.0
HINFO_TTL = 8482
_HINFO = RD(b"\x07RFC8482\x00")  # CPU "RFC8482", OS "": the minimal ANY answer of RFC 8482
_REFUSED_TYPES = frozenset({QTYPE.AXFR, QTYPE.IXFR, QTYPE.OPT})
_SAFE = frozenset(range(0x21, 0x7F)) - {ord("."), ord("\\")}


class _Packed(NamedTuple):
    """A reply packed for reuse: its bytes after the ID, its metrics (labelled once), until when it holds,
    and for an upstream answer from the cache, what ages it: when the answer was stored, its age in
    whole seconds when packed, and where its TTLs are."""

    wire: bytes
    requests: Any  # the requests counter for its proto, type and rcode
    duration: Any  # the latency histogram for its source
    until: float
    stored: float = 0.0
    age: int = 0
    ttls: tuple[int, ...] = ()  # offsets in `wire`; empty: the TTLs never change (cluster answers)


def parse_listen(text: str) -> tuple[str, int]:
    """`ADDR:PORT` or `[ADDR]:PORT` (port 0: an ephemeral port) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen address {text!r} is not ADDR:PORT")
    return host, int(port)


def _text(qname: DNSLabel) -> str | None:
    """The name as the client spelled it, or None when a label has bytes we never answer for."""
    if any(not part or not _SAFE.issuperset(part) for part in qname.label):
        return None
    return ".".join(part.decode("ascii") for part in qname.label)


def _opts(request: DNSRecord) -> list[RR]:
    return [rr for rr in request.ar if rr.rtype == QTYPE.OPT]


class DNSServer:
    """Serves the cluster zones from `store` and forwards everything else, as `config` says."""

    def __init__(self, store: RecordStore, config: DNSConfig | None = None, *,
                 resolvers: Sequence[Server] | None = None, metrics: Metrics | None = None,
                 rate_limit: float = 0) -> None:
        self.store = store
        self.limit = ResponseRateLimit(rate_limit) if rate_limit > 0 else None
        self.metrics = metrics or Metrics()
        self._fallback = tuple(resolvers) if resolvers is not None else system_resolvers()
        self.health = HealthServer(self.metrics, lambda: self.store.synced, self._scrape)
        self._tasks: set[asyncio.Task[None]] = set()
        self._udp: UDPListener | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_clients = 0
        self._tcp_sources: dict[str, int] = {}  # open connections by client address
        self.forwarder: Forwarder | None = None
        self._answers: dict[bytes, _Packed] = {}  # proto + query after its ID -> packed reply
        self._answers_serial: int = -1  # the store serial and config the packed replies hold for
        self._answers_config: DNSConfig | None = None
        self.configure(config or store.config)

    # --- lifecycle ----------------------------------------------------------------------------

    def configure(self, config: DNSConfig) -> None:
        """Adopt a new DNSConfig; the upstream cache survives unless upstreams or cache settings change."""
        old = self.forwarder.config if self.forwarder else None
        self.config = config
        self.store.configure(config)
        self.policy = Policy(config)
        same = old is not None and (old.upstream, old.stub_domains, old.cache) == (
            config.upstream, config.stub_domains, config.cache)
        if self.forwarder is None or not same:
            self.forwarder = Forwarder(config, self.metrics, self._fallback)
        else:
            self.forwarder.config = config

    async def start(self, listen: str) -> tuple[str, int]:
        """Listen on UDP and TCP at `ADDR:PORT` (the same port for both); returns the bound address."""
        host, port = parse_listen(listen)
        for _ in range(20):
            udp = UDPListener(host, port, self._answer_udp, self.spawn, self.cached_udp, self._admit_udp)
            bound = udp.port
            try:
                self._tcp = await asyncio.start_server(self._tcp_client, host, bound)
            except OSError:
                udp.close()
                if port:
                    raise
                continue  # the ephemeral UDP port is taken for TCP: try another
            self._udp = udp
            return host, bound
        raise OSError(f"no port free for both UDP and TCP on {host}")

    async def start_http(self, listen: str) -> tuple[str, int]:
        """Serve /health, /ready and /metrics at `ADDR:PORT`."""
        host, port = parse_listen(listen)
        return host, await self.health.start(host, port)

    async def stop(self, lameduck: float | None = None) -> None:
        """Report unhealthy, keep answering for the lameduck period, then close everything."""
        self.health.lameduck = True
        delay = self.config.lameduck_seconds if lameduck is None else lameduck
        if delay > 0:
            await asyncio.sleep(delay)
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
        await self.health.stop()

    def _admit_udp(self, client: tuple[Any, ...]) -> bool:
        """Whether a datagram from `client` is answered: always, unless it is over its rate limit."""
        if self.limit is None or self.limit.allow(client[0], time.monotonic()):
            return True
        self.metrics.dropped.labels(reason="ratelimit").inc()
        return False

    async def _answer_udp(self, data: bytes, client: tuple[Any, ...]) -> bytes | None:
        return await self.handle(data, client[:2], "udp")

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run one query's work, unless MAX_PENDING are already running (then drop it)."""
        if len(self._tasks) >= MAX_PENDING:
            work.close()
            self.metrics.dropped.labels(reason="overload").inc()
            return
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _scrape(self) -> None:
        for kind, count in self.store.stats().items():
            self.metrics.objects.labels(kind=kind).set(count)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        source = str(peer[0])
        self._tcp_clients += 1
        self._tcp_sources[source] = from_source = self._tcp_sources.get(source, 0) + 1
        if from_source > MAX_TCP_PER_SOURCE:
            self.metrics.dropped.labels(reason="tcp-per-source").inc()
        try:
            while self._tcp_clients <= MAX_TCP_CONNECTIONS and from_source <= MAX_TCP_PER_SOURCE:
                (size,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE))
                data = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE)
                wire = await self.handle(data, peer, "tcp")
                if wire is None:
                    break
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tcp_clients -= 1
            if (left := self._tcp_sources.pop(source) - 1) > 0:
                self._tcp_sources[source] = left
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    # --- one query ----------------------------------------------------------------------------

    async def handle(self, data: bytes, client: tuple[str, int], proto: str) -> bytes | None:
        """The wire reply to one query packet, or None to send nothing."""
        started = time.monotonic()
        cached = self._cached(data, proto, started)
        if cached is not None:
            return cached
        if not safe_query(data):  # compression pointers (loops in dnslib), records a query never has
            return self._formerr(data, proto)
        try:
            request = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - dnslib raises many types on garbage, all mean "malformed"
            return self._formerr(data, proto)
        if request.header.qr:
            self.metrics.dropped.labels(reason="response").inc()
            return None
        try:
            reply, rcode, source = await self._respond(request, client[0])
            wire = self._wire(request, reply, rcode, proto)
        except Exception:
            log.exception("answering %s from %s failed", request.q.qname, client[0])
            reply, rcode, source = self._reply(request), RCODE.SERVFAIL, "local"
            reply.questions = []
            wire = self._wire(request, reply, rcode, proto)
        qtype = request.q.qtype if request.questions else 0
        self.metrics.requests.labels(proto=proto, type=type_label(qtype), rcode=rcode_label(rcode)).inc()
        elapsed = time.monotonic() - started
        self.metrics.duration.labels(source=source).observe(elapsed)
        if self.config.query_log:
            self._log(request, reply, client, proto, len(data), len(wire), rcode, elapsed)
        elif not self.config.acl and (times := self._reusable(request, source, rcode)):
            stored, until = times
            ttls = tuple(at - 2 for at in ttl_offsets(wire)) if source == "cache" else ()
            m = self.metrics
            self._remember(data, proto, _Packed(
                wire[2:], m.requests.labels(proto=proto, type=type_label(qtype), rcode=rcode_label(rcode)),
                m.duration.labels(source=source), until, stored, int(started - stored), ttls))
        return wire

    def _cached(self, data: bytes, proto: str, now: float) -> bytes | None:
        """A reply packed before for the same bytes, while the store and config are unchanged and, for
        upstream answers, while they are in the cache (their TTLs lowered as they age).

        Most queries repeat (the same names, asked by every pod), and parsing and packing with dnslib
        is most of their cost. The key is every byte but the ID (so name case, flags and EDNS0 are the
        same) and the transport (truncation differs). Only store answers for names that exist and
        upstream answers served from the cache are kept (a flood of random names adds nothing): no
        acl-dependent or logged ones."""
        if self._answers_serial != self.store.serial or self._answers_config is not self.config:
            self._answers.clear()
            self._answers_serial, self._answers_config = self.store.serial, self.config
            return None
        key = PROTO_KEYS[proto] + data[2:]
        hit = self._answers.get(key)
        if hit is None:
            return None
        if hit.until <= now:
            del self._answers[key]
            return None
        if hit.ttls:
            age = int(now - hit.stored)
            if age != hit.age:
                hit = self._answers[key] = hit._replace(wire=aged(hit.wire, hit.ttls, age - hit.age), age=age)
            self.metrics.cache_hits.inc()
        hit.requests.inc()
        hit.duration.observe(time.monotonic() - now)
        return data[:2] + hit.wire

    def cached_udp(self, data: bytes) -> bytes | None:
        """The packed reply to a UDP query, if there is one: answered at once, without a task."""
        return self._cached(data, "udp", time.monotonic())

    def _reusable(self, request: DNSRecord, source: str, rcode: int) -> tuple[float, float] | None:
        """(stored, until) for a reply that may answer the same bytes again, else None."""
        if source == "cluster" and rcode == RCODE.NOERROR:  # names that exist, until the store changes
            return 0.0, math.inf
        if source == "cache" and self.forwarder is not None:
            q = request.q
            return self.forwarder.cache.lifetime(cache_key(q.qname, q.qtype, q.qclass))
        return None

    def _remember(self, data: bytes, proto: str, packed: _Packed) -> None:
        if self._answers_serial != self.store.serial or self._answers_config is not self.config:
            return
        if len(self._answers) >= ANSWER_CACHE:  # a flood of random names must not grow memory
            self._answers.clear()
        self._answers[PROTO_KEYS[proto] + data[2:]] = packed

    def _formerr(self, data: bytes, proto: str) -> bytes | None:
        """FORMERR for a packet whose header is readable and is a query; None (drop) otherwise."""
        if len(data) < 12 or data[2] & 0x80:
            self.metrics.dropped.labels(reason="malformed").inc()
            return None
        header = DNSHeader(id=struct.unpack("!H", data[:2])[0], qr=1, opcode=(data[2] >> 3) & 0xF,
                           rd=data[2] & 1, ra=1, rcode=RCODE.FORMERR)
        self.metrics.requests.labels(proto=proto, type="other", rcode="FORMERR").inc()
        return DNSRecord(header).pack()

    @staticmethod
    def _reply(request: DNSRecord) -> DNSRecord:
        hdr = request.header
        reply = DNSRecord(DNSHeader(id=hdr.id, qr=1, opcode=hdr.opcode, rd=hdr.rd, ra=1, cd=hdr.cd))
        reply.questions = list(request.questions[:1])
        return reply

    async def _respond(self, request: DNSRecord, client: str) -> tuple[DNSRecord, int, str]:
        """The reply message (without OPT), its full rcode, and where the answer came from."""
        reply = self._reply(request)
        hdr, opts = request.header, _opts(request)
        if hdr.opcode != OPCODE.QUERY:
            reply.questions = []
            return reply, RCODE.NOTIMP, "local"
        if len(request.questions) != 1 or len(opts) > 1 or len(request.rr) > 1 or len(request.auth) > 1 \
                or len(request.ar) > 2:
            reply.questions = []
            return reply, RCODE.FORMERR, "local"
        if opts and (opts[0].ttl >> 16) & 0xFF:
            return reply, 16, "local"  # BADVERS: we speak EDNS version 0 only
        q = request.q
        if len(q.qname) > 253 or any(len(part) > 63 for part in q.qname.label):
            reply.questions = []
            return reply, RCODE.FORMERR, "local"
        if q.qclass != CLASS.IN or q.qtype in _REFUSED_TYPES:
            return reply, RCODE.REFUSED, "local"
        spelled = _text(q.qname)
        name = spelled.lower() if spelled is not None else None
        if not self.policy.allowed(client, name or "", QTYPE.get(q.qtype)):
            return reply, RCODE.REFUSED, "acl"
        if name is None:
            return self._unsafe(reply, q.qname)
        target = self.policy.rewrite(name)
        owner = spelled if target == name else target
        rcode, source = await self._resolve(reply, owner, target, q.qtype)
        if target != name:
            _rename(reply, label(target), q.qname)
        return reply, rcode, source

    def _unsafe(self, reply: DNSRecord, qname: DNSLabel) -> tuple[DNSRecord, int, str]:
        """Names with dots or unprintable bytes inside labels: NXDOMAIN in our zones, else refused."""
        zone = self.store.zone_of(str(qname).lower().removesuffix("."))
        if zone is None:
            return reply, RCODE.REFUSED, "local"
        reply.header.aa = 1
        reply.auth = self.store.lookup(zone, QTYPE.SOA).answer
        return reply, RCODE.NXDOMAIN, "cluster"

    async def _resolve(self, reply: DNSRecord, owner: str, name: str, qtype: int) -> tuple[int, str]:
        """Fill `reply` for `name` (canonical) with records owned by `owner`; returns (rcode, source)."""
        hosted = self.policy.hosts(owner, name, qtype)
        if hosted is not None:
            reply.header.aa = 1
            reply.rr.extend(hosted)
            return RCODE.NOERROR, "hosts"
        found = self.store.lookup(owner, qtype)
        if found is not None and not (found.fallthrough and found.rcode == RCODE.NXDOMAIN):
            reply.header.aa = 1
            if qtype == QTYPE.ANY and found.rcode == RCODE.NOERROR:
                reply.rr.append(RR(label(owner), QTYPE.HINFO, rdata=_HINFO, ttl=HINFO_TTL))
                return RCODE.NOERROR, "cluster"
            reply.rr.extend(found.answer)
            reply.auth.extend(found.authority)
            reply.ar.extend(found.additional)
            if found.external and qtype != QTYPE.CNAME:  # the target's records come from upstream
                with contextlib.suppress(ForwardError):
                    upstream, _ = await self._forward(label(found.external), found.external, qtype)
                    reply.rr.extend(upstream.rr)
                return found.rcode, "forward"
            return found.rcode, "cluster"
        if qtype == QTYPE.ANY:
            reply.rr.append(RR(label(owner), QTYPE.HINFO, rdata=_HINFO, ttl=HINFO_TTL))
            return RCODE.NOERROR, "local"
        try:
            upstream, source = await self._forward(label(owner), name, qtype)
        except ForwardError as e:
            return e.rcode, "forward"
        reply.rr.extend(upstream.rr)
        reply.auth.extend(upstream.auth)
        reply.ar.extend(rr for rr in upstream.ar if rr.rtype != QTYPE.OPT)
        return upstream.header.rcode, source

    async def _forward(self, qname: DNSLabel, name: str, qtype: int) -> tuple[DNSRecord, str]:
        assert self.forwarder is not None
        reply, cached = await self.forwarder.resolve(qname, name, qtype)
        return reply, "cache" if cached else "forward"

    def _wire(self, request: DNSRecord, reply: DNSRecord, rcode: int, proto: str) -> bytes:
        """Pack the reply with our OPT record, truncated to what the client can take over UDP."""
        reply.header.rcode = rcode & 0xF
        opts = _opts(request)
        limit = 65535 if proto == "tcp" else 512
        if opts:
            opt = opts[0]
            do = "do" if opt.ttl & 0x8000 else ""
            reply.ar.append(EDNS0(udp_len=ADVERTISED_UDP, ext_rcode=rcode >> 4, flags=do))
            if proto == "udp":
                limit = max(512, min(opt.rclass, ADVERTISED_UDP))
        wire = reply.pack()
        if len(wire) <= limit:
            return wire
        reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
        wire = reply.pack()
        if len(wire) <= limit:
            return wire
        reply.rr, reply.auth, reply.header.tc = [], [], 1
        return reply.pack()

    def _log(self, request: DNSRecord, reply: DNSRecord, client: tuple[str, int], proto: str, size: int,
             rsize: int, rcode: int, elapsed: float) -> None:
        """One line per query, in the shape of CoreDNS's log plugin."""
        q = request.q
        opts = _opts(request)
        do = bool(opts and opts[0].ttl & 0x8000)
        bufsize = opts[0].rclass if opts else 512
        h = reply.header
        bits = (("qr", 1), ("aa", h.aa), ("tc", h.tc), ("rd", h.rd), ("ra", h.ra))
        flags = ",".join(flag for flag, on in bits if on)
        query_log.info('%s:%s - %d "%s %s %s %s %d %s %d" %s %s %d %.6fs', client[0], client[1],
                       request.header.id, QTYPE.get(q.qtype), CLASS.get(q.qclass), q.qname, proto, size,
                       str(do).lower(), bufsize, RCODE.get(rcode) if rcode < 16 else "BADVERS", flags, rsize,
                       elapsed)


def _rename(reply: DNSRecord, rewritten: DNSLabel, original: DNSLabel) -> None:
    """Give records owned by the rewritten name the name the client asked for (rewrite `answer auto`)."""
    for section in (reply.rr, reply.auth, reply.ar):
        section[:] = [RR(original, rr.rtype, rr.rclass, rr.ttl, rr.rdata) if rr.rname == rewritten else rr
                      for rr in section]
