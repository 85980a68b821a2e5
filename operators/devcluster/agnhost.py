"""Stand-ins for upstream's agnhost test image, answering as it does: `serve-hostname`,
`netexec`, `connect`, `porter` and `pause`. Standard library only (each pod runs one)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IPPROTO_SCTP = 132
# answer(request_text, client_address) -> the reply, or None for no reply
Answer = Callable[[str, tuple], str | None]


def hostname() -> str:
    return socket.gethostname()


class _V6HTTPServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve its own name through DNS: skip that
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "agnhost", self.server_address[1]


def serve_http(port: int, handler: type[BaseHTTPRequestHandler]) -> None:
    """An HTTP server on every address of both families (dual-stack socket)."""
    server = _V6HTTPServer(("::", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def _client(addr: tuple) -> str:
    host = addr[0].removeprefix("::ffff:")
    return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"


def serve_udp(port: int, answer: Answer) -> None:
    """A UDP responder: answer(request_text, client) -> reply text."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))

    def loop() -> None:
        while True:
            data, addr = sock.recvfrom(65535)
            reply = answer(data.decode(errors="replace").strip(), addr)
            if reply is not None:
                sock.sendto(reply.encode(), addr)

    threading.Thread(target=loop, daemon=True).start()


def serve_stream(port: int, proto: int, answer: Answer) -> None:
    """A TCP or SCTP responder that reads one line and writes answer(line, client)."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, proto)
    except OSError as e:
        print(f"cannot serve protocol {proto} on port {port}: {e}", file=sys.stderr, flush=True)
        return
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::", port))
    sock.listen(128)

    def handle(conn: socket.socket, addr: tuple) -> None:
        with conn:
            conn.settimeout(5)
            try:
                data = conn.recv(1024) if proto == IPPROTO_SCTP else b""
                reply = answer(data.decode(errors="replace").strip(), addr)
                conn.sendall(reply.encode())
            except OSError:
                pass

    def loop() -> None:
        while True:
            conn, addr = sock.accept()
            threading.Thread(target=handle, args=(conn, addr), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def wait_forever(delay_shutdown: float = 0) -> None:
    """Serve until SIGTERM or SIGINT, then go on serving `delay_shutdown` seconds more (as agnhost's
    --delay-shutdown: the time a load balancer needs to stop sending new requests)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    time.sleep(delay_shutdown)


# --- serve-hostname


def cmd_serve_hostname(a: argparse.Namespace) -> None:
    name = hostname()

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._reply(name)

        def _reply(self, text: str) -> None:
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            if a.close:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    if a.udp:
        serve_udp(a.port, lambda _req, _addr: name)
    if a.tcp:
        serve_stream(a.port, 0, lambda _req, _addr: name)
    elif a.http:
        serve_http(a.port, H)
    print(f"Serving on port {a.port}", flush=True)
    wait_forever()


# --- netexec


def udp_answer(req: str, addr: tuple) -> str | None:
    cmd, _, arg = req.partition(" ")
    if cmd == "hostname":
        return hostname()
    if cmd == "echo":
        return arg
    if cmd == "clientip":
        return _client(addr)
    return None


def dial(params: dict[str, str]) -> dict[str, list[str]]:
    """netexec's /dial: ask another netexec for `request` over http or udp, `tries` times."""
    host, port = params.get("host", ""), int(params.get("port", "0"))
    req, proto, tries = (
        params.get("request", "hostname"),
        params.get("protocol", "http"),
        int(params.get("tries", "1")),
    )
    out: dict[str, list[str]] = {"responses": [], "errors": []}
    target = f"[{host}]" if ":" in host else host
    for _ in range(tries):
        try:
            if proto == "udp":
                with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(1)
                    s.sendto(req.encode(), (host, port))
                    out["responses"].append(s.recv(65535).decode())
            else:
                with urllib.request.urlopen(f"http://{target}:{port}/{req.lstrip('/')}", timeout=1) as r:
                    out["responses"].append(r.read().decode())
        except OSError as e:
            out["errors"].append(str(e))
    return out


def cmd_netexec(a: argparse.Namespace) -> None:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            path = url.path
            if path in ("/hostname", "/hostName"):
                self._text(hostname())
            elif path == "/clientip":
                self._text(_client(self.client_address))
            elif path == "/echo":
                self._text(q.get("msg", ""))
            elif path == "/header":
                self._text(self.headers.get(q.get("key", ""), ""))
            elif path in ("/healthz", "/readyz"):
                self._text("ok")
            elif path == "/dial":
                self._text(json.dumps(dial(q)), "application/json")
            elif path == "/exit":
                self._text("exiting")
                os._exit(int(q.get("code", "0")))
            elif path == "/":
                self._text("NOW: " + time.strftime("%Y-%m-%d %H:%M:%S"))
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            # read the body first: a kept-alive client (nginx) sends its next request after it
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        # upstream's handlers answer every method (Go's mux does not filter them)
        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

        def _text(self, text: str, ctype: str = "text/plain; charset=utf-8") -> None:
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    serve_http(a.http_port, H)
    if a.udp_port > 0:
        serve_udp(a.udp_port, udp_answer)
    if a.sctp_port > 0:
        serve_stream(a.sctp_port, IPPROTO_SCTP, udp_answer)
    print(f"Started HTTP server on port {a.http_port}, UDP server on port {a.udp_port}", flush=True)
    wait_forever(a.delay_shutdown)


# --- connect


def cmd_connect(a: argparse.Namespace) -> None:
    host, sep, port_s = a.target.rpartition(":")
    host = host.strip("[]")
    if not sep or not port_s.isdigit():
        print(f"UNKNOWN: address {a.target}: missing port in address", file=sys.stderr)
        sys.exit(1)
    timeout = parse_duration(a.timeout) or None
    try:
        info = socket.getaddrinfo(host, int(port_s))[0]
    except OSError as e:
        print(f"DNS: {e}", file=sys.stderr)
        sys.exit(1)
    family, addr = info[0], info[4]
    kind, proto = {
        "tcp": (socket.SOCK_STREAM, 0),
        "udp": (socket.SOCK_DGRAM, 0),
        "sctp": (socket.SOCK_STREAM, IPPROTO_SCTP),
    }.get(a.protocol, (None, None))
    if kind is None:
        print(f"Unsupported protocol {a.protocol}", file=sys.stderr)
        sys.exit(1)
    try:
        with socket.socket(family, kind, proto) as s:
            s.settimeout(timeout)
            s.connect(addr)
            if a.protocol != "tcp":
                s.send(((a.udp_data if a.protocol == "udp" else a.sctp_data) + "\n").encode())
                if not s.recv(1024):
                    print("OTHER: No data received from the server.", file=sys.stderr)
                    sys.exit(1)
    except TimeoutError:
        print("TIMEOUT", file=sys.stderr)
        sys.exit(1)
    except ConnectionRefusedError as e:
        print(f"REFUSED: {e}" if a.protocol == "udp" else "REFUSED", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"OTHER: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


def parse_duration(text: str) -> float:
    """Go durations as agnhost takes them: `1s`, `500ms`, `2m`, `0`."""
    if not text or text == "0":
        return 0.0
    for unit, mult in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * mult
    raise SystemExit(f"UNKNOWN: invalid duration {text!r}")


# --- porter


def cmd_porter(_: argparse.Namespace) -> None:
    """Serve the value of each SERVE_PORT_<n> (HTTP) and SERVE_UDP_PORT_<n> env var on port n."""
    served = 0
    for key, value in sorted(os.environ.items()):
        for prefix, kind in (
            ("SERVE_PORT_", "http"),
            ("SERVE_UDP_PORT_", "udp"),
            ("SERVE_SCTP_PORT_", "sctp"),
        ):
            if key.startswith(prefix) and key[len(prefix) :].isdigit():
                port = int(key[len(prefix) :])
                if kind == "http":
                    serve_http(port, _fixed_handler(value))
                elif kind == "udp":
                    serve_udp(port, lambda _r, _a, v=value: v)
                else:
                    serve_stream(port, IPPROTO_SCTP, lambda _r, _a, v=value: v)
                served += 1
    if not served:
        print("porter: no SERVE_PORT_<n> variables set", file=sys.stderr)
        sys.exit(1)
    wait_forever()


def _fixed_handler(value: str) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = value.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return H


def cmd_pause(_: argparse.Namespace) -> None:
    wait_forever()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="agnhost")
    sub = p.add_subparsers(dest="cmd", required=True)
    sh = sub.add_parser("serve-hostname")
    sh.add_argument("--port", type=int, default=9376)
    sh.add_argument("--tcp", action="store_true")
    sh.add_argument("--udp", action="store_true")
    sh.add_argument("--http", type=lambda v: v.lower() != "false", default=True)
    sh.add_argument("--close", action="store_true")
    sh.set_defaults(func=cmd_serve_hostname)
    ne = sub.add_parser("netexec")
    ne.add_argument("--http-port", type=int, default=8080)
    ne.add_argument("--udp-port", type=int, default=8081)
    ne.add_argument("--sctp-port", type=int, default=-1)
    ne.add_argument("--delay-shutdown", type=int, default=0)
    ne.set_defaults(func=cmd_netexec)
    co = sub.add_parser("connect")
    co.add_argument("target")
    co.add_argument("--timeout", default="0")
    co.add_argument("--protocol", default="tcp")
    co.add_argument("--udp-data", default="hostname")
    co.add_argument("--sctp-data", default="hostname")
    co.set_defaults(func=cmd_connect)
    sub.add_parser("porter").set_defaults(func=cmd_porter)
    sub.add_parser("pause").set_defaults(func=cmd_pause)
    a = p.parse_args(argv)
    a.func(a)


if __name__ == "__main__":
    main()
