"""The UDP side of the DNS server: replies leave from the address each query was sent to.

A socket bound to 0.0.0.0 (or ::) on a host with several addresses (a node: its own address plus one
per pod veth; a node-local cache on a link-local address) would otherwise reply with the source
address of the route back, and resolvers drop replies from an address they did not ask. As CoreDNS
(miekg/dns) does, we read each query's destination with IP_PKTINFO / IPV6_RECVPKTINFO and pass it
back with sendmsg. asyncio's datagram transports carry no ancillary data, hence a plain non-blocking
socket on the event loop's reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Coroutine
from typing import Any

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux; missing from some Python builds
READ_BATCH = 64  # datagrams read per wake-up, so that TCP and timers get their turn under a flood
MAX_DATAGRAM = 65535
MAX_SOURCES = 1024  # destinations whose reply control message is kept

Answer = Callable[[bytes, tuple[Any, ...]], Coroutine[Any, Any, bytes | None]]
Packed = Callable[[bytes], bytes | None]
Admit = Callable[[tuple[Any, ...]], bool]


class UDPListener:
    """Receives queries on one socket and replies as it was asked: at once when `packed(data)` has the
    reply (a task per query costs more than the answer), else through `spawn(answer(data, client))`.
    A datagram from a client that `admit` refuses (over its rate) is dropped unread."""

    def __init__(self, host: str, port: int, answer: Answer,
                 spawn: Callable[[Coroutine[Any, Any, None]], None], packed: Packed = lambda _: None,
                 admit: Admit = lambda _: True) -> None:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        self.v6 = family == socket.AF_INET6
        self.sock = socket.socket(family, kind)
        try:
            if self.v6:
                self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            else:
                self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            self.sock.setblocking(False)
            self.sock.bind(address)
        except OSError:
            self.sock.close()
            raise
        self.port: int = self.sock.getsockname()[1]
        self._answer = answer
        self._packed = packed
        self._admit = admit
        self._spawn = spawn
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)
        self._ancillary = socket.CMSG_SPACE(20)  # in6_pktinfo; in_pktinfo is 12 bytes
        self._sources: dict[bytes, list[tuple[int, int, bytes]]] = {}  # pktinfo -> the reply's control message

    def _readable(self) -> None:
        for _ in range(READ_BATCH):
            try:
                data, ancillary, _flags, client = self.sock.recvmsg(MAX_DATAGRAM, self._ancillary)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP errors reported on the socket: nothing to answer
                continue
            if not self._admit(client):
                continue
            wire = self._packed(data)
            if wire is None:
                self._spawn(self._reply(data, client, self._source(ancillary)))
                continue
            try:  # noqa: SIM105 (a context manager per reply costs more than this try); the socket is open
                self.sock.sendmsg([wire], self._source(ancillary), 0, client)
            except OSError:  # a full send buffer or a vanished client: UDP drops it
                pass

    def _source(self, ancillary: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
        """The control message that makes the reply leave from the query's destination address (one per
        destination, kept: every reply needs one, and a node has few addresses)."""
        key = ancillary[0][2] if len(ancillary) == 1 else None
        found = self._sources.get(key) if key is not None else None
        if found is None:
            found = self._control(ancillary)
            if key is not None and len(self._sources) < MAX_SOURCES:
                self._sources[key] = found
        return found

    def _control(self, ancillary: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
        for level, kind, data in ancillary:
            if not self.v6 and level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
                return [(level, kind, b"\0\0\0\0" + data[8:12] + b"\0\0\0\0")]  # ifindex 0, spec_dst = ipi_addr
            if self.v6 and level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 20:
                return [(level, kind, data[:20])]  # the address and, for link-local ones, its interface
        return []

    async def _reply(self, data: bytes, client: tuple[Any, ...], source: list[tuple[int, int, bytes]]) -> None:
        wire = await self._answer(data, client)
        if wire is not None:
            self._send(wire, client, source)

    def _send(self, wire: bytes, client: tuple[Any, ...], source: list[tuple[int, int, bytes]]) -> None:
        if self.sock.fileno() >= 0:
            with contextlib.suppress(OSError):  # a full send buffer or a vanished client: UDP drops it
                self.sock.sendmsg([wire], source, 0, client)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
