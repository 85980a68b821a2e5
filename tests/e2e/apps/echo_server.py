"""The echo backend of the Ingress e2e tests (the role of the conformance suite's echoserver).

It answers every request with JSON naming its pod, the port that got the request (each conformance
Service targets its own port of the same pods, so the port names the Service), and the method, path and
Host it saw, so one assertion can check where nginx sent a request and how it rewrote it. /slow?s=N waits
N seconds (proxy timeouts); /flaky answers $FAIL when set (retries to the next upstream); WebSocket
upgrades echo text frames; TLS_PORT serves HTTPS and GRPC_PORT/GRPCS_PORT a minimal unary gRPC
responder, for the backend-protocol annotations. Ports come from the environment: PORTS (comma
separated), TLS_PORT, GRPC_PORT, GRPCS_PORT; the TLS key pair is read from /tls.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import socketserver
import ssl
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME, FAIL = socket.gethostname(), int(os.environ.get("FAIL") or 0)
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        if url.path == "/slow":
            time.sleep(float(q.get("s", "1")))
        code = FAIL if url.path == "/flaky" and FAIL else 200
        body = json.dumps({"pod": NAME, "port": self.server.server_address[1], "tls": self.server.tls,
                           "method": self.command, "path": self.path, "host": self.headers.get("Host", ""),
                           "code": self.headers.get("X-Code", "")}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def websocket(self) -> None:
        """Accept the upgrade, then echo text frames back with the pod name."""
        key = self.headers["Sec-WebSocket-Key"] + GUID
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", base64.b64encode(hashlib.sha1(key.encode()).digest()).decode())
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2 or head[0] & 0x0F == 8:
                return
            size = head[1] & 0x7F
            if size == 126:
                size = struct.unpack(">H", self.rfile.read(2))[0]
            mask = self.rfile.read(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(size)))
            out = data + b" from " + NAME.encode()
            self.wfile.write(bytes([0x81, len(out)]) + out)
            self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    tls = False

    def server_bind(self) -> None:
        """Without HTTPServer's reverse DNS lookup of its own address (the pod has no resolver for it)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "echo", self.server_address[1]


def serve(port: int, tls: ssl.SSLContext | None = None) -> Server:
    server = Server(("0.0.0.0", port), H)
    server.tls = bool(tls)
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def literal(name: bytes, value: bytes) -> bytes:
    """An HPACK literal header field without indexing, plain (short) strings."""
    return bytes([0, len(name)]) + name + bytes([len(value)]) + value


class Grpc(socketserver.BaseRequestHandler):
    """Just enough HTTP/2 for a unary gRPC call: every request stream gets one message naming the pod."""

    def handle(self) -> None:
        f = self.request.makefile("rb")
        if f.read(24) != b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n":
            return
        self.request.sendall(frame(4, 0, 0))
        while len(head := f.read(9)) == 9:
            kind, flags, stream = head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
            payload = f.read(int.from_bytes(head[:3], "big"))
            if kind in (4, 6) and not flags & 1:  # SETTINGS, PING: acknowledge
                self.request.sendall(frame(kind, 1, 0, payload if kind == 6 else b""))
            elif kind in (0, 1) and flags & 1 and stream:  # the request ended: answer it
                message = b"\x0a" + bytes([len(NAME)]) + NAME.encode()
                self.request.sendall(
                    frame(1, 4, stream, b"\x88" + literal(b"content-type", b"application/grpc"))
                    + frame(0, 0, stream, b"\x00" + len(message).to_bytes(4, "big") + message)
                    + frame(1, 5, stream, literal(b"grpc-status", b"0")))


class GrpcServer(socketserver.ThreadingTCPServer):
    daemon_threads = allow_reuse_address = True


def serve_grpc(port: int, tls: ssl.SSLContext | None = None) -> GrpcServer:
    server = GrpcServer(("0.0.0.0", port), Grpc)
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    for p in os.environ["PORTS"].split(","):
        serve(int(p))
    if os.environ.get("GRPC_PORT"):
        serve_grpc(int(os.environ["GRPC_PORT"]))
    if os.environ.get("TLS_PORT"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain("/tls/tls.crt", "/tls/tls.key")
        serve(int(os.environ["TLS_PORT"]), ctx)
        h2 = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        h2.load_cert_chain("/tls/tls.crt", "/tls/tls.key")
        h2.set_alpn_protocols(["h2"])
        serve_grpc(int(os.environ["GRPCS_PORT"]), h2)
    threading.Event().wait()


if __name__ == "__main__":
    main()
