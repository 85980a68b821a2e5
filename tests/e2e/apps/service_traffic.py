"""Traffic to a Service for as long as /tmp/stop is absent: is any request dropped while knet is upgraded?

Argument: the Service's address (port 80). Each round makes one request on a new connection and one on a
connection kept alive from the start (an upgrade must drop neither new nor established flows), then
sleeps 0.1 s. Prints one line per request: "ok new|kept" or "fail new|kept ERROR".
"""

from __future__ import annotations

import http.client
import os
import sys
import time
import urllib.request


def main() -> None:
    target = sys.argv[1]
    kept = http.client.HTTPConnection(target, 80, timeout=3)
    while not os.path.exists("/tmp/stop"):
        for how in ("new", "kept"):
            try:
                if how == "new":
                    urllib.request.urlopen(f"http://{target}/hostname", timeout=3).read()
                else:
                    kept.request("GET", "/hostname")
                    kept.getresponse().read()
                print("ok", how, flush=True)
            except Exception as e:  # noqa: BLE001 - every failure is a line of the report
                print("fail", how, repr(e), flush=True)
        time.sleep(0.1)


if __name__ == "__main__":
    main()
