"""An API server with no objects, for CoreDNS's kubernetes plugin in a throwaway namespace.

`python -m tests.golden.dns.empty_api CERT KEY PORT`: HTTPS on 127.0.0.1:PORT; every list is empty
(with the List kind of its resource) and every watch stays open without events, so the plugin syncs
and answers its zones (dns-version, NXDOMAIN with the zone's SOA) as it does in an empty cluster.
The standard library's server starts in a fraction of a second, well within CoreDNS's 5 s wait.
"""

from __future__ import annotations

import json
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KINDS = {"services": ("v1", "ServiceList"), "namespaces": ("v1", "NamespaceList"), "pods": ("v1", "PodList"),
         "endpoints": ("v1", "EndpointsList"), "endpointslices": ("discovery.k8s.io/v1", "EndpointSliceList")}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        resource = url.path.rstrip("/").rsplit("/", 1)[-1]
        if resource not in KINDS:
            return self._json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})
        if query.get("watch", [""])[0] in ("true", "1"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if query.get("sendInitialEvents", [""])[0] == "true":  # client-go's WatchList: no objects, then the end
                api_version, kind = KINDS[resource]
                end = {"type": "BOOKMARK", "object": {"kind": kind.removesuffix("List"), "apiVersion": api_version,
                       "metadata": {"resourceVersion": "1", "annotations": {"k8s.io/initial-events-end": "true"}}}}
                data = json.dumps(end).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            time.sleep(float(query.get("timeoutSeconds", ["300"])[0]))
            self.wfile.write(b"0\r\n\r\n")
            return None
        api_version, kind = KINDS[resource]
        return self._json(200, {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": "1"},
                                "items": []})

    def _json(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, file=sys.stderr, flush=True)


def main() -> None:
    cert, key, port = sys.argv[1:4]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
