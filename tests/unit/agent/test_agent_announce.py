"""The announcements a node sends when it starts answering for a LoadBalancer address: the frames'
fields, and a neighbour's kernel replacing the MAC it held (two throwaway namespaces; needs root)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import struct
import sys
from collections.abc import Iterator

import pytest

from operators.agent import announce
from operators.agent.announce import Announcer, arp_announcement, neighbour_advertisement
from operators.devcluster import netns

MAC = bytes.fromhex("0a1b2c3d4e5f")


@pytest.mark.parametrize(("reply", "op", "target_mac"), [(False, 1, bytes(6)), (True, 2, MAC)])
def test_arp_announcement_is_a_broadcast_for_the_address_from_itself(reply: bool, op: int, target_mac: bytes) -> None:
    frame = arp_announcement(MAC, "172.30.0.140", reply)
    dst, src, ethertype = frame[:6], frame[6:12], struct.unpack("!H", frame[12:14])[0]
    assert (dst, src, ethertype) == (b"\xff" * 6, MAC, 0x0806) and len(frame) == 42
    assert struct.unpack("!HHBBH", frame[14:22]) == (1, 0x0800, 6, 4, op)
    sha, spa, tha, tpa = frame[22:28], frame[28:32], frame[32:38], frame[38:42]
    assert sha == MAC and spa == tpa == ipaddress.IPv4Address("172.30.0.140").packed and tha == target_mac


def test_neighbour_advertisement_overrides_unsolicited_with_the_mac() -> None:
    message = neighbour_advertisement(MAC, "fd00:172:30::1:c")
    kind, code, checksum, flags = struct.unpack("!BBHI", message[:8])
    assert (kind, code, checksum) == (136, 0, 0)
    assert flags >> 29 == 0b001  # Router and Solicited clear, Override set
    assert message[8:24] == ipaddress.IPv6Address("fd00:172:30::1:c").packed
    assert message[24:] == b"\x02\x01" + MAC and len(message) == 32


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    """A client namespace and a node namespace joined by a veth pair (kgc in the client, kgn in the node)."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2")
    client, node = f"knet-ut-garp-c{os.getpid()}", f"knet-ut-garp-n{os.getpid()}"
    try:
        for ns in (client, node):
            netns.add(ns)
        netns.ip(None, "link", "add", f"kgc{os.getpid()}", "type", "veth", "peer", "name", f"kgn{os.getpid()}")
        netns.ip(None, "link", "set", f"kgc{os.getpid()}", "netns", client, "name", "kgc")
        netns.ip(None, "link", "set", f"kgn{os.getpid()}", "netns", node, "name", "kgn")
        netns.ip(node, "link", "set", "kgn", "up")
        netns.ip(node, "-6", "addr", "add", "fd00:9::2/64", "dev", "kgn", "nodad")
        netns.ip(client, "link", "set", "kgc", "up")
        netns.ip(client, "addr", "add", "172.31.255.1/24", "dev", "kgc")
        netns.ip(client, "-6", "addr", "add", "fd00:9::1/64", "dev", "kgc", "nodad")
        yield client, node
    finally:
        for ns in (client, node):
            netns.delete(ns)


def test_a_neighbour_replaces_the_mac_it_held_for_the_addresses(pair: tuple[str, str]) -> None:
    client, node = pair
    stale = "02:00:00:00:00:01"  # the previous owner's MAC, as the client learnt it
    addresses = ["172.31.255.9", "fd00:9::9"]
    for ip in addresses:
        netns.ip(client, "neigh", "replace", ip, "lladdr", stale, "dev", "kgc", "nud", "stale")
    mac = json.loads(netns.ip(node, "-j", "link", "show", "kgn"))[0]["address"]
    netns.in_ns(node, sys.executable, "-c", "import sys; from operators.agent.announce import tell_neighbours; "
                "tell_neighbours('kgn', sys.argv[1:])", *addresses)
    for ip in addresses:
        entry = netns.ip(client, "neigh", "show", ip, "dev", "kgc")
        assert f"lladdr {mac} " in entry, (ip, entry, mac)


# Run in the node namespace: one gratuitous ARP for argv[1], the request or (argv[2] "reply") the reply.
ONE_ARP = """
import socket, sys
from operators.agent.announce import arp_announcement
with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
    raw.bind(("kgn", 0))
    raw.send(arp_announcement(raw.getsockname()[4], sys.argv[1], sys.argv[2] == "reply"))
"""


@pytest.mark.parametrize("form", ["request", "reply"])
def test_a_neighbour_takes_either_form_of_gratuitous_arp_alone(pair: tuple[str, str], form: str) -> None:
    """Both forms are sent because some devices heed only one; a Linux neighbour heeds each on its own."""
    client, node = pair
    netns.ip(client, "neigh", "replace", "172.31.255.9", "lladdr", "02:00:00:00:00:01", "dev", "kgc", "nud", "stale")
    mac = json.loads(netns.ip(node, "-j", "link", "show", "kgn"))[0]["address"]
    netns.in_ns(node, sys.executable, "-c", ONE_ARP, "172.31.255.9", form)
    entry = netns.ip(client, "neigh", "show", "172.31.255.9", "dev", "kgc")
    assert f"lladdr {mac} " in entry, entry


def test_announcements_repeat_only_for_addresses_still_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[list[str]] = []
    announcer = Announcer()
    announcer.link, announcer.answering = "eth0", {"10.0.0.1", "10.0.0.2"}

    def tell(link: str, addresses: list[str]) -> None:
        sent.append(list(addresses))
        if len(sent) == 2:
            announcer.answering.discard("10.0.0.2")  # another node took it over meanwhile

    monkeypatch.setattr(announce, "tell_neighbours", tell)
    monkeypatch.setattr(announce, "EVERY", 0.001)
    asyncio.run(announcer.repeat(["10.0.0.1", "10.0.0.2"]))
    assert sent == [["10.0.0.1", "10.0.0.2"]] * 2 + [["10.0.0.1"]] * (announce.REPEATS - 3)
