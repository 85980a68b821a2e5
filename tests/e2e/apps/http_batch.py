"""Many HTTP(S) requests to one address in one process, concurrently: the Ingress e2e tests' client.

One exec per scenario instead of one curl per request keeps a test of hundreds of requests to seconds.
Arguments: the address nginx listens on, a JSON list of requests ({host, path} and optionally method,
headers, https, ca: a PEM to verify against, else unverified), and `sequential` to send one at a time.
Prints one JSON list: [status, headers with lower-case names, body] per request, [0, {}, error] when
none came back.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import socket
import ssl
import sys
from typing import Any


def one(addr: str, r: dict[str, Any]) -> list[Any]:
    try:
        if r.get("https"):
            ctx = ssl.create_default_context(cadata=r["ca"]) if r.get("ca") else ssl._create_unverified_context()
            c: http.client.HTTPConnection = http.client.HTTPSConnection(r["host"], 443, timeout=10, context=ctx)
            # connect to the address, but send the Host as SNI and verify the certificate against it
            c.sock = ctx.wrap_socket(socket.create_connection((addr, 443), 10), server_hostname=r["host"])
        else:
            c = http.client.HTTPConnection(addr, 80, timeout=10)
        c.request(r.get("method", "GET"), r["path"], headers={"Host": r["host"], **r.get("headers", {})})
        resp = c.getresponse()
        out = [resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode(errors="replace")]
        c.close()
        return out
    except OSError as e:
        return [0, {}, repr(e)]


def main() -> None:
    addr, reqs = sys.argv[1], json.loads(sys.argv[2])
    with concurrent.futures.ThreadPoolExecutor(1 if sys.argv[3:] == ["sequential"] else 32) as pool:
        print(json.dumps(list(pool.map(lambda r: one(addr, r), reqs))))


if __name__ == "__main__":
    main()
