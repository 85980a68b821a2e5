"""The names of the kernel's nftables tables of one family, from one netlink dump (NFT_MSG_GETTABLE).

The agent asks before every sync whether its tables are still there. `nft list tables` reads far more of
the ruleset than the names (0.2 s with a few thousand chains), and pyroute2, which can make the same
dump, loads its whole library (about 10 MiB) for it; the request is small enough to make here.
"""

from __future__ import annotations

import os
import socket
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETTABLE = 1
NFTA_TABLE_NAME = 1
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFPROTO_INET = 1
HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
NFGEN = struct.Struct("=BBH")  # nfgenmsg: family, version, resource id
ATTR = struct.Struct("=HH")  # nlattr: length, type


def table_names(family: int = NFPROTO_INET) -> set[str]:
    """The names of the tables of `family` in this network namespace; raises OSError if netlink refuses."""
    request = NFGEN.pack(family, 0, 0)
    message = HEADER.pack(HEADER.size + len(request), NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETTABLE,
                          NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + request
    names: set[str] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as s:
        s.bind((0, 0))
        s.sendall(message)
        while True:
            data = s.recv(1 << 16)
            for kind, payload in _messages(data):
                if kind == NLMSG_DONE:
                    return names
                if kind == NLMSG_ERROR:
                    error = -struct.unpack_from("=i", payload)[0]
                    if error:
                        raise OSError(error, f"netlink: {os.strerror(error)}")
                    continue
                if NFGEN.unpack_from(payload)[0] == family:
                    name = _attributes(payload[NFGEN.size:]).get(NFTA_TABLE_NAME)
                    if name is not None:
                        names.add(name.rstrip(b"\0").decode())


def _messages(data: bytes) -> list[tuple[int, bytes]]:
    out, offset = [], 0
    while offset + HEADER.size <= len(data):
        length, kind, _, _, _ = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            break
        out.append((kind, data[offset + HEADER.size:offset + length]))
        offset += (length + 3) & ~3
    return out


def _attributes(data: bytes) -> dict[int, bytes]:
    out, offset = {}, 0
    while offset + ATTR.size <= len(data):
        length, kind = ATTR.unpack_from(data, offset)
        if length < ATTR.size:
            break
        out[kind & 0x7FFF] = data[offset + ATTR.size:offset + length]
        offset += (length + 3) & ~3
    return out
