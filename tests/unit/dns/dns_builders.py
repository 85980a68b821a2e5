"""Builders for the API objects DNS reads, a short way to ask the store, and fake upstream servers."""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from typing import Any

from dnslib import QTYPE, RCODE, RR, SOA, A, DNSRecord

from operators.dns.records import RecordStore

SERVICE_LABEL = "kubernetes.io/service-name"


def service(name: str, ns: str = "default", ips: tuple[str, ...] = ("10.96.0.10",), ports: Any = None,
            **spec: Any) -> dict:
    ports = [{"name": "http", "port": 80}] if ports is None else ports
    body = {"clusterIP": ips[0] if ips else "None", "clusterIPs": list(ips) or ["None"], "ports": ports,
            **spec}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": body}


def headless(name: str, ns: str = "default", ports: Any = None) -> dict:
    return service(name, ns, (), ports)


def external(name: str, target: str, ns: str = "default") -> dict:
    return service(name, ns, (), [], type="ExternalName", externalName=target, clusterIP=None,
                   clusterIPs=None)


def endpoint(ip: str, hostname: str | None = None, ready: bool = True, pod: str | None = None) -> dict:
    ep: dict[str, Any] = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        ep["hostname"] = hostname
    if pod:
        ep["targetRef"] = {"kind": "Pod", "name": pod, "namespace": "default"}
    return ep


def endpoint_slice(service_name: str, endpoints: list[dict], ns: str = "default", name: str | None = None,
                   family: str = "IPv4", ports: Any = None) -> dict:
    ports = [{"name": "http", "port": 8080, "protocol": "TCP"}] if ports is None else ports
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name or f"{service_name}-{family.lower()}", "namespace": ns,
                     "labels": {SERVICE_LABEL: service_name}},
        "addressType": family, "ports": ports, "endpoints": endpoints,
    }


def pod(name: str, ips: list[str], ns: str = "default", phase: str = "Running", **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "c"}], **spec},
            "status": {"phase": phase, "podIP": ips[0] if ips else None,
                       "podIPs": [{"ip": ip} for ip in ips]}}


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def store_of(*objects: dict, config: Any = None) -> RecordStore:
    store = RecordStore(config)
    for obj in objects:
        assert store.apply(obj) == [], obj
    return store


def ask(store: RecordStore, name: str, qtype: str = "A") -> tuple[str, list[str], list[str], list[str]]:
    """(rcode name, answer rdata, additional 'name type rdata', authority types) for one question."""
    found = store.lookup(name, getattr(QTYPE, qtype))
    assert found is not None, f"{name} is not in the store's zones"
    return (RCODE.get(found.rcode), [str(rr.rdata) for rr in found.answer],
            [f"{rr.rname} {QTYPE.get(rr.rtype)} {rr.rdata}" for rr in found.additional],
            [QTYPE.get(rr.rtype) for rr in found.authority])


class FakeUpstream:
    """A UDP+TCP resolver on loopback: `*.missing.` is NXDOMAIN, `big.*` is too big for UDP, else an A."""

    def __init__(self, address: str = "10.0.0.1") -> None:
        self.address = address
        self.queries: list[tuple[str, str]] = []  # (proto, name)
        outer = self

        class UDP(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = outer.answer(data, "udp")
                if reply:
                    sock.sendto(reply, self.client_address)

        class TCP(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                size = struct.unpack("!H", self.request.recv(2))[0]
                reply = outer.answer(self.request.recv(size), "tcp")
                if reply:
                    self.request.sendall(struct.pack("!H", len(reply)) + reply)

        for _ in range(20):  # the ephemeral UDP port must be free for TCP too
            self.udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), UDP)
            self.port = self.udp.server_address[1]
            try:
                self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), TCP)
                break
            except OSError:
                self.udp.server_close()
        for server in (self.udp, self.tcp):
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def answer(self, data: bytes, proto: str) -> bytes | None:
        request = DNSRecord.parse(data)
        name = str(request.q.qname)
        self.queries.append((proto, name))
        reply = request.reply(aa=0)
        if name.endswith("missing."):
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(RR("missing.", QTYPE.SOA, ttl=60,
                              rdata=SOA("ns.missing.", "h.missing.", (1, 60, 60, 60, 30))))
        elif name.startswith("big.") and proto == "udp":
            reply.header.tc = 1
        elif request.q.qtype == QTYPE.A:
            count = 40 if name.startswith("big.") else 1
            for i in range(count):
                reply.add_answer(RR(request.q.qname, QTYPE.A, ttl=60, rdata=A(f"{self.address[:-1]}{i + 1}")))
        return reply.pack()

    def close(self) -> None:
        for server in (self.udp, self.tcp):
            server.shutdown()
            server.server_close()


def silent_upstream() -> socket.socket:
    """A bound UDP socket that never answers: an unreachable upstream that does not even refuse."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock
