"""LoadBalancer addresses made reachable on the underlay, as MetalLB's layer-2 mode does.

Which node answers ARP (IPv4) and neighbour solicitations (IPv6) for a LoadBalancer address is a pure
choice that every agent makes alike from the same views, so exactly one node answers for each address
without any talk between agents:
- candidates: Ready Nodes without the label `node.kubernetes.io/exclude-from-external-load-balancers`;
  for `externalTrafficPolicy: Local`, only those with a ready endpoint of the Service (traffic must
  land where an endpoint is);
- among them, the node whose `sha256("<node>#<address>")` sorts first (MetalLB's rule): deterministic,
  and different addresses spread over the nodes.
A Service of Cluster policy is announced even without endpoints, so that clients get the proxy's
reject rather than an ARP timeout.

How the node answers (the kernel does it, no packet code here): a proxy neighbour entry for the address
on the node's underlay link (`ip neigh add proxy ADDR dev LINK`), with a host route for the address to
`knet-lb`, a veth whose peer stays down. The kernel answers ARP for a proxy entry only when it would
forward the address out of another link; packets to the Service ports are DNATed before routing by the
proxy rules, and anything else routed to `knet-lb` is dropped, so the address answers only on its
Service ports. Proxy replies go out at once (`proxy_delay` 0). The routes on `knet-lb` are the record
of what is announced, so a restarted agent takes over (and cleans up) what its predecessor announced.
When a node starts answering for an address it tells the underlay at once, as MetalLB does: a
gratuitous ARP request and reply (IPv4; some devices heed only one of the two) or an unsolicited
Neighbor Advertisement with the Override flag (IPv6), repeated every 1.1 s for 5 s while the node still
answers for it (MetalLB's timing), in case one is lost. A client that still holds the previous node's
MAC replaces it (Linux updates an existing entry from either, whatever `arp_accept` says) instead of
sending to a node that no longer answers until the entry fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operators.agent import dataplane
from operators.kube.services import EndpointSlice, family_of
from operators.proxy.model import ProxyModel

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
LINK, PEER = "knet-lb", "knet-lb-peer"
REPEATS, EVERY = 5, 1.1  # announcements of a new address: how many, how far apart (seconds)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Peer:
    """A Node as the LoadBalancer election sees it."""

    name: str
    eligible: bool  # Ready and not excluded from external load balancers


def peer_of(body: Mapping[str, Any]) -> Peer:
    md, status = body.get("metadata") or {}, body.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return Peer(str(md.get("name") or ""), ready and EXCLUDE_LABEL not in (md.get("labels") or {}))


def owner(address: str, candidates: Iterable[str]) -> str | None:
    """The node that answers for `address` (None without candidates)."""
    return min(candidates, key=lambda n: hashlib.sha256(f"{n}#{address}".encode()).hexdigest(), default=None)


def announced(model: ProxyModel, peers: Iterable[Peer], slices: Iterable[EndpointSlice]) -> tuple[str, ...]:
    """The LoadBalancer addresses that this node (`model.node`) answers for, sorted.

    `slices` is read only when a Service with externalTrafficPolicy Local has an address, and then only
    for those Services: the reporter calls this once a second while the model changes, and at 30k
    Services a pass over every slice's endpoints took ~0.1 s of the event loop."""
    eligible = sorted({p.name for p in peers if p.eligible})
    ports = model.balanced_ports
    local = {(p.namespace, p.name) for p in ports if p.external_local}
    with_endpoints: dict[tuple[str, str], set[str]] = {}
    for sl in slices if local else ():
        if (key := (sl.namespace, sl.service_name)) in local:
            with_endpoints.setdefault(key, set()).update(e.node_name for e in sl.endpoints if e.ready and e.node_name)
    mine: set[str] = set()
    for p in ports:
        candidates = eligible
        if p.external_local:
            candidates = [n for n in eligible if n in with_endpoints.get((p.namespace, p.name), set())]
        mine.update(ip for ip in p.lb_ips if owner(ip, candidates) == model.node)
    return tuple(sorted(mine, key=lambda ip: (family_of(ip), int(ipaddress.ip_address(ip)))))


def arp_announcement(mac: bytes, ip: str, reply: bool = False) -> bytes:
    """A gratuitous ARP request (or reply) for `ip` at `mac` as an Ethernet broadcast frame: sender and
    target address both `ip`; the target MAC is zero in a request, `mac` in a reply (what makes a reply
    gratuitous to Linux)."""
    addr = ipaddress.IPv4Address(ip).packed
    header = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2 if reply else 1)  # Ethernet, IPv4, address lengths
    return b"\xff" * 6 + mac + b"\x08\x06" + header + mac + addr + (mac if reply else bytes(6)) + addr


def neighbour_advertisement(mac: bytes, ip: str) -> bytes:
    """An unsolicited ICMPv6 Neighbor Advertisement for `ip` at `mac`: Override set, Solicited and Router
    clear (a node's proxy answers carry no Router flag), the target link-layer address option; the
    kernel fills in the checksum of a raw ICMPv6 socket."""
    return struct.pack("!BBHI", 136, 0, 0, 0x20000000) + ipaddress.IPv6Address(ip).packed + b"\x02\x01" + mac


def tell_neighbours(link: str, addresses: Iterable[str]) -> None:
    """Send the announcements for `addresses` out of `link` (needs CAP_NET_RAW); OSError on failure."""
    ips = list(addresses)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
        raw.bind((link, 0))
        mac = raw.getsockname()[4]
        for ip in ips:
            if family_of(ip) == 4:
                raw.send(arp_announcement(mac, ip))
                raw.send(arp_announcement(mac, ip, reply=True))
    if six := [ip for ip in ips if family_of(ip) == 6]:
        index = socket.if_nametoindex(link)
        with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as icmp:
            icmp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)  # or receivers drop it
            for ip in six:
                icmp.sendto(neighbour_advertisement(mac, ip), ("ff02::1", 0, 0, index))


def _host(ip: str) -> str:
    return f"{ip}/{32 if family_of(ip) == 4 else 128}"


class Announcer:
    """Keeps the kernel's proxy neighbour entries and `knet-lb` routes equal to `announced`."""

    def __init__(self) -> None:
        self.link = ""  # the underlay link (the one holding the node's address)
        self.answering: set[str] = set()
        self.repeats: set[asyncio.Task[None]] = set()  # held here: the loop keeps only weak references

    async def _ip(self, *args: str) -> tuple[bool, str]:
        code, err = await dataplane.run(["ip", *args])
        return code == 0, err

    async def _underlay(self, node_ips: Iterable[str]) -> str:
        code, out, _ = await dataplane.run_output(["ip", "-j", "addr", "show"])
        for link in json.loads(out or "[]") if code == 0 else []:
            if any(a.get("local") in node_ips for a in link.get("addr_info", [])):
                return str(link["ifname"])
        return ""

    async def _current(self) -> set[str]:
        found: set[str] = set()
        for family in ("-4", "-6"):
            code, out, _ = await dataplane.run_output(["ip", "-j", family, "route", "show", "dev", LINK])
            found.update(r["dst"].split("/")[0] for r in json.loads(out or "[]") if code == 0)
        return found

    async def _prepare(self, families: set[int]) -> bool:
        code, _, _ = await dataplane.run_output(["ip", "link", "show", LINK])
        if code != 0:
            ok, err = await self._ip("link", "add", LINK, "type", "veth", "peer", "name", PEER)
            if not ok:
                log.warning("cannot create %s: %s", LINK, err)
                return False
        await self._ip("link", "set", LINK, "up")
        settings = [f"ipv4/neigh/{self.link}/proxy_delay", f"ipv4/conf/{self.link}/forwarding"]
        if 6 in families:
            settings += [f"ipv6/neigh/{self.link}/proxy_delay", f"ipv6/conf/{self.link}/proxy_ndp",
                         "ipv6/conf/all/forwarding"]
        for name in settings:
            path = Path("/proc/sys/net") / name
            try:
                path.write_text("0" if name.endswith("proxy_delay") else "1")
            except OSError as e:
                log.warning("cannot set %s: %s", path, e)
        return True

    async def update(self, node_ips: Iterable[str], addresses: Iterable[str]) -> list[str]:
        """Answer for exactly `addresses`; the errors met (each also logged)."""
        wanted, errors = set(addresses), []
        if not self.link:
            self.link = await self._underlay(set(node_ips))
        current = await self._current() if self.link else set()
        if wanted and not (self.link and await self._prepare({family_of(ip) for ip in wanted})):
            return [f"cannot announce LoadBalancer addresses: no underlay link for {list(node_ips)}"]
        for ip in sorted(current - wanted):
            await self._ip("neigh", "del", "proxy", ip, "dev", self.link)
            await self._ip("route", "del", _host(ip), "dev", LINK)
            log.info("no longer answering for LoadBalancer address %s", ip)
        added: list[str] = []
        for ip in sorted(wanted - current):
            failed = len(errors)
            for args in (("route", "replace", _host(ip), "dev", LINK),
                         ("neigh", "replace", "proxy", ip, "dev", self.link)):
                ok, err = await self._ip(*args)
                if not ok:
                    errors.append(f"ip {' '.join(args)}: {err}")
                    log.warning("%s", errors[-1])
            if len(errors) == failed:
                added.append(ip)
                log.info("answering ARP/NDP for LoadBalancer address %s on %s", ip, self.link)
        self.answering = (current & wanted) | set(added)
        if added:
            if err := self._tell(added):
                errors.append(err)
            else:
                task = asyncio.create_task(self.repeat(added))
                self.repeats.add(task)
                task.add_done_callback(self.repeats.discard)
        return errors

    def _tell(self, addresses: list[str]) -> str:
        """Announce `addresses` on the underlay; the error met (also logged), or ""."""
        try:
            tell_neighbours(self.link, addresses)
        except OSError as e:
            err = f"cannot announce {', '.join(addresses)} on {self.link}: {e}"
            log.warning("%s", err)
            return err
        return ""

    async def repeat(self, addresses: list[str]) -> None:
        """The announcements of `addresses` again, every EVERY seconds, REPEATS - 1 times, each time only
        for those this node still answers for."""
        for _ in range(REPEATS - 1):
            await asyncio.sleep(EVERY)
            if not (addresses := [ip for ip in addresses if ip in self.answering]) or self._tell(addresses):
                return
