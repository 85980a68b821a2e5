"""Run inside a fresh network namespace (`unshare -n`): bring up loopback, add 10.255.0.1 and .2 to it (the
namespace's own), start two tiny HTTP backends on 10.255.0.1:19001 (v1) and 10.255.0.2:19002 (v2) that
answer with their name, the path and the headers they saw, start `nginx -p DIR -c nginx.conf` as `knet
render --out DIR` wrote it, send the requests listed in the JSON file given, and print one JSON answer per
request, and the paths each backend saw. Nothing here can reach an address outside the namespace."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SEEN: dict[str, list[str]] = {"v1": [], "v2": []}  # the paths each backend was asked for


def backend(name: str, address: str, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do(self) -> None:
            SEEN[name].append(self.path)
            body = json.dumps({"backend": name, "path": self.path,
                               "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public")
            self.send_header("Server-Timing", "db;dur=1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def ask(req: dict) -> dict:
    if req.get("tls"):
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", req["port"]), timeout=5),
                               server_hostname=req["host"])  # SNI: the listener's hostname picks the certificate
        conn = http.client.HTTPConnection("127.0.0.1", req["port"], timeout=5)
        conn.sock = sock
        # the name the served certificate was made for (its only SAN), read without verifying it
        from cryptography import x509
        cert = x509.load_der_x509_certificate(sock.getpeercert(binary_form=True))
        served = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    else:
        conn, served = http.client.HTTPConnection("127.0.0.1", req["port"], timeout=5), []
    conn.request(req.get("method", "GET"), req["path"], headers={"Host": req["host"], **req.get("headers", {})})
    resp = conn.getresponse()
    body = resp.read()
    try:
        seen = json.loads(body)
    except ValueError:
        seen = {}
    return {"status": resp.status, "headers": {k.lower(): v for k, v in resp.getheaders()},
            "backend": seen.get("backend", ""), "path": seen.get("path", ""), "seen": seen.get("headers", {}),
            "certificate": served}


def main() -> None:
    directory, requests_file = sys.argv[1], sys.argv[2]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for address in ("10.255.0.1/32", "10.255.0.2/32"):
        subprocess.run(["ip", "address", "add", address, "dev", "lo"], check=True)
    backend("v1", "10.255.0.1", 19001)
    backend("v2", "10.255.0.2", 19002)
    nginx = subprocess.Popen(["nginx", "-p", directory, "-c", "nginx.conf", "-e", "stderr"],
                             stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", 18080, timeout=1).request("GET", "/")
                break
            except OSError:
                time.sleep(0.05)
        with open(requests_file) as f:
            requests = json.load(f)
        answers = [ask(r) for r in requests]
        time.sleep(0.3)  # mirrored requests are not waited for
        print(json.dumps({"answers": answers, "seen": SEEN}))
    finally:
        nginx.terminate()
        _, err = nginx.communicate(timeout=10)
        print(err, file=sys.stderr)


if __name__ == "__main__":
    main()
