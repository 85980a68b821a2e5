"""Packed DNS messages, touched without dnslib: whether a query is safe to parse, where the TTLs are,
and the same message older.

dnslib follows compression pointers by recursion: a pointer to itself, or a loop of them, runs until
RecursionError, at many times the cost of a query. A query needs no pointer (its one question comes
first), so `safe_query` refuses any, before dnslib sees the bytes.

A cached upstream answer is packed once and reused; as it ages its TTLs must drop each second
(clients cache for what we say). Rewriting four bytes per record is far cheaper than unpacking
and packing the message again with dnslib.
"""

from __future__ import annotations

import struct

OPT = 41  # the EDNS0 pseudo-record: its "TTL" holds flags, never a time


def _skip_name(message: bytes, pos: int) -> int:
    while True:
        length = message[pos]
        if length >= 0xC0:  # a compression pointer ends the name
            return pos + 2
        if length == 0:
            return pos + 1
        pos += length + 1


def _plain_name_end(message: bytes, pos: int) -> int | None:
    """Where the name at `pos` ends, if it is spelled out: None for a compression pointer, a reserved
    label type or a name that runs past the message."""
    while pos < len(message):
        length = message[pos]
        if length == 0:
            return pos + 1
        if length >= 0x40:
            return None
        pos += length + 1
    return None


def safe_query(message: bytes) -> bool:
    """Whether dnslib may parse `message` in bounded time: a header, questions whose names are spelled
    out, no answer or authority records, and additional records that are OPT (the root name, type 41)."""
    if len(message) < 12:
        return False
    qdcount, ancount, nscount, arcount = struct.unpack_from("!4H", message, 4)
    if ancount or nscount:
        return False
    pos = 12
    for _ in range(qdcount):
        end = _plain_name_end(message, pos)
        if end is None:
            return False
        pos = end + 4
    for _ in range(arcount):
        if pos + 11 > len(message) or message[pos] != 0 or struct.unpack_from("!H", message, pos + 1)[0] != OPT:
            return False
        pos += 11 + struct.unpack_from("!H", message, pos + 9)[0]
    return pos <= len(message)


def ttl_offsets(message: bytes) -> tuple[int, ...]:
    """Offsets of the TTL fields of every record (but OPT) in a whole, well-formed message."""
    qdcount, ancount, nscount, arcount = struct.unpack_from("!4H", message, 4)
    pos, found = 12, []
    for _ in range(qdcount):
        pos = _skip_name(message, pos) + 4
    for _ in range(ancount + nscount + arcount):
        pos = _skip_name(message, pos)
        rtype, _, _, rdlength = struct.unpack_from("!HHIH", message, pos)
        if rtype != OPT:
            found.append(pos + 4)
        pos += 10 + rdlength
    return tuple(found)


def aged(message: bytes, offsets: tuple[int, ...], seconds: int) -> bytes:
    """The message with the TTLs at `offsets` lowered by `seconds` (not below 0)."""
    out = bytearray(message)
    for at in offsets:
        (ttl,) = struct.unpack_from("!I", out, at)
        struct.pack_into("!I", out, at, max(0, ttl - seconds))
    return bytes(out)
