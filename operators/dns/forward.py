"""Forwarding names outside the cluster zones: upstream choice, UDP with TCP fallback, and a cache.

Bounded in every direction, because a pod can send a flood of random names:
- at most `maxConcurrent` exchanges in flight; beyond that queries are refused at once, never
  queued (CoreDNS's forward answers REFUSED the same way), and identical questions in flight share
  one exchange;
- each attempt has a timeout, and a query tries at most MAX_ATTEMPTS upstreams;
- the cache is two LRU maps (positive and negative answers) of `cache.size` entries each, with TTLs
  capped by `successTTL` / `denialTTL` (answers from the cache carry the capped TTL, as CoreDNS's do).
Every upstream reply is checked (id, question) before use, and sent from a fresh socket, so
spoofed or stray packets are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dnslib import CLASS, EDNS0, QTYPE, RCODE, RR, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from operators.dns.config import Cache, DNSConfig, Server
from operators.dns.metrics import Metrics
from operators.dns.names import in_zone, parse_server

ADVERTISED_UDP = 1232  # the EDNS0 buffer size we offer, as CoreDNS and the DNS flag day advise
MAX_ATTEMPTS = 3
DEFAULT_NEGATIVE_TTL = 5  # for negative answers that carry no SOA
CacheKey = tuple[tuple[bytes, ...], int, int]


class ForwardError(Exception):
    """No usable upstream answer; `rcode` is what the client gets."""

    def __init__(self, rcode: int, reason: str) -> None:
        super().__init__(reason)
        self.rcode = rcode


@dataclass
class _Entry:
    expires: float
    stored: float
    rcode: int
    sections: tuple[list[RR], list[RR], list[RR]]


class AnswerCache:
    """Positive and negative upstream answers, LRU-bounded, served with decreasing TTLs."""

    def __init__(self, config: Cache) -> None:
        self.config = config
        self._positive: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._negative: OrderedDict[CacheKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._positive) + len(self._negative)

    def get(self, key: CacheKey, now: float) -> DNSRecord | None:
        for table in (self._positive, self._negative):
            entry = table.get(key)
            if entry is None:
                continue
            if entry.expires <= now:
                del table[key]
                return None
            table.move_to_end(key)
            age, kept = int(now - entry.stored), round(entry.expires - entry.stored)
            msg = DNSRecord(DNSHeader(rcode=entry.rcode))
            for src, dst in zip(entry.sections, (msg.rr, msg.auth, msg.ar), strict=True):  # TTLs capped as kept
                dst.extend(RR(r.rname, r.rtype, r.rclass, max(0, min(r.ttl, kept) - age), r.rdata) for r in src)
            return msg
        return None

    def lifetime(self, key: CacheKey) -> tuple[float, float] | None:
        """(stored, expires) of the entry for `key`, None without one; the server ages its packed reply
        from these instead of asking the cache again."""
        entry = self._positive.get(key) or self._negative.get(key)
        return (entry.stored, entry.expires) if entry is not None else None

    def put(self, key: CacheKey, msg: DNSRecord, now: float) -> None:
        if not self.config.enabled or msg.header.tc:
            return
        rcode = msg.header.rcode
        if rcode == RCODE.NOERROR and msg.rr:
            ttl, table = min(min(r.ttl for r in msg.rr), self.config.success_ttl), self._positive
        elif rcode in (RCODE.NOERROR, RCODE.NXDOMAIN):
            soas = [min(r.ttl, r.rdata.times[4]) for r in msg.auth if r.rtype == QTYPE.SOA]
            ttl = min(min(soas) if soas else DEFAULT_NEGATIVE_TTL, self.config.denial_ttl)
            table = self._negative
        else:
            return  # SERVFAIL, REFUSED...: not cached
        if ttl <= 0:
            return
        extra = [r for r in msg.ar if r.rtype != QTYPE.OPT]
        table[key] = _Entry(now + ttl, now, rcode, (list(msg.rr), list(msg.auth), extra))
        table.move_to_end(key)
        while len(table) > self.config.size:
            table.popitem(last=False)


def cache_key(qname: DNSLabel, qtype: int, qclass: int = CLASS.IN) -> CacheKey:
    return tuple(part.lower() for part in qname.label), qtype, qclass


def system_resolvers(path: str = "/etc/resolv.conf") -> tuple[Server, ...]:
    """The nameservers of resolv.conf (the DNS pod's, with dnsPolicy Default: the node's)."""
    servers = []
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver" and (found := parse_server(parts[1])):
                servers.append(Server(*found))
    return tuple(servers)


class _Reply(asyncio.DatagramProtocol):
    """Waits on a connected UDP socket for the reply that carries our id."""

    def __init__(self, qid: int) -> None:
        self.qid = qid
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) >= 2 and struct.unpack("!H", data[:2])[0] == self.qid and not self.done.done():
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


async def _udp(server: Server, query: bytes, qid: int, timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(lambda: _Reply(qid),
                                                           remote_addr=(server.host, server.port))
    try:
        transport.sendto(query)
        return await asyncio.wait_for(proto.done, timeout)
    finally:
        transport.close()


async def _tcp(server: Server, query: bytes, timeout: float) -> bytes:
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(struct.pack("!H", len(query)) + query)
            await writer.drain()
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(size)
        finally:
            writer.close()

    return await asyncio.wait_for(exchange(), timeout)


class Forwarder:
    """Resolves questions through the configured upstreams, with the answer cache in front."""

    def __init__(self, config: DNSConfig, metrics: Metrics, fallback: Sequence[Server] = ()) -> None:
        self.config = config
        self.metrics = metrics
        self.cache = AnswerCache(config.cache)
        self._default = config.upstream.servers or tuple(fallback)
        self._stubs = sorted(config.stub_domains, key=lambda s: -len(s.domain))
        self._active = 0
        self._inflight: dict[CacheKey, asyncio.Future[DNSRecord]] = {}
        self._turn = itertools.count()

    def servers_for(self, name: str) -> tuple[Server, ...]:
        """The stub domain's servers for names below it, else the default upstreams."""
        for stub in self._stubs:
            if in_zone(name, stub.domain):
                return stub.servers
        return self._default

    def _order(self, servers: tuple[Server, ...]) -> list[Server]:
        policy = self.config.upstream.policy
        if policy == "sequential" or len(servers) < 2:
            return list(servers)
        if policy == "round_robin":
            start = next(self._turn) % len(servers)
            return list(servers[start:] + servers[:start])
        return random.sample(servers, len(servers))

    async def resolve(self, qname: DNSLabel, name: str, qtype: int, qclass: int = CLASS.IN,
                      ) -> tuple[DNSRecord, bool]:
        """The upstream reply for one question and whether it came from the cache; raises ForwardError."""
        key = cache_key(qname, qtype, qclass)
        now = time.monotonic()
        cached = self.cache.get(key, now)
        if cached is not None:
            self.metrics.cache_hits.inc()
            return cached, True
        self.metrics.cache_misses.inc()
        shared = self._inflight.get(key)
        if shared is not None:
            return await asyncio.shield(shared), False
        if self._active >= self.config.upstream.max_concurrent:
            self.metrics.forward_errors.labels(upstream="", reason="max_concurrent").inc()
            raise ForwardError(RCODE.REFUSED, "too many queries in flight upstream")
        servers = self.servers_for(name)
        if not servers:
            raise ForwardError(RCODE.SERVFAIL, "no upstream servers")
        future: asyncio.Future[DNSRecord] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        self._active += 1
        try:
            reply = await self._exchange(servers, qname, qtype, qclass)
            self.cache.put(key, reply, time.monotonic())
            self.metrics.cache_entries.set(len(self.cache))
            future.set_result(reply)
            return reply, False
        except ForwardError as e:
            future.set_exception(e)
            future.exception()  # retrieved: waiters re-raise it, nobody has to
            raise
        finally:
            if not future.done():  # cancelled: waiters must not hang on it
                future.cancel()
            self._active -= 1
            del self._inflight[key]

    async def _exchange(self, servers: tuple[Server, ...], qname: DNSLabel, qtype: int,
                        qclass: int) -> DNSRecord:
        timeout = self.config.upstream.timeout
        for server in self._order(servers)[:MAX_ATTEMPTS]:
            qid = secrets.randbelow(65536)
            query = DNSRecord(DNSHeader(id=qid, rd=1), q=DNSQuestion(qname, qtype, qclass))
            query.add_ar(EDNS0(udp_len=ADVERTISED_UDP))
            wire = query.pack()
            self.metrics.forward_requests.labels(upstream=str(server)).inc()
            try:
                reply = DNSRecord.parse(await _udp(server, wire, qid, timeout))
                if reply.header.tc:
                    reply = DNSRecord.parse(await _tcp(server, wire, timeout))
            except TimeoutError:
                self.metrics.forward_errors.labels(upstream=str(server), reason="timeout").inc()
                continue
            except (OSError, EOFError, asyncio.IncompleteReadError):
                self.metrics.forward_errors.labels(upstream=str(server), reason="network").inc()
                continue
            except Exception:  # noqa: BLE001 - dnslib raises many types on garbage; try the next upstream
                self.metrics.forward_errors.labels(upstream=str(server), reason="bad_reply").inc()
                continue
            if reply.header.id != qid or reply.q.qname != qname or reply.q.qtype != qtype:
                self.metrics.forward_errors.labels(upstream=str(server), reason="bad_reply").inc()
                continue
            return reply
        raise ForwardError(RCODE.SERVFAIL, "no upstream answered")
