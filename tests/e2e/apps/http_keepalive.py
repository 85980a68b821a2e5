"""A pod's main process: one kept-alive HTTP connection to $TARGET:80, asked for /hostname every 0.3 s.

An established connection must keep reaching its endpoint while the rules change around it; the test reads
from the pod's log one line per request: "ok HOSTNAME LOCALPORT" (the port shows the connection is the
same one), or "error ..." (then the connection is closed and the next request opens another).
"""

from __future__ import annotations

import http.client
import os
import time


def main() -> None:
    conn = http.client.HTTPConnection(os.environ["TARGET"], 80, timeout=3)
    while True:
        try:
            conn.request("GET", "/hostname")
            body = conn.getresponse().read().decode()
            print("ok", body, conn.sock.getsockname()[1], flush=True)
        except OSError as e:
            print("error", e, flush=True)
            conn.close()
        time.sleep(0.3)


if __name__ == "__main__":
    main()
