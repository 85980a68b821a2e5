"""Probe many (address, port, protocol) targets at once from one pod: which of them can it reach?

The NetworkPolicy tests ask a whole reachability matrix per source pod, so one process probes every target
of its source concurrently (0.6 s each: a dropped packet shows as a timeout, a rejected one at once).
Argument: a JSON list of [ip, port, "TCP"|"UDP"]. A TCP target counts as reached when the connection is
accepted, a UDP one when it answers a datagram (the servers echo). Prints one JSON list of booleans.
"""

from __future__ import annotations

import json
import socket
import sys
import threading


def probe(ip: str, port: int, proto: str, out: list[bool | None], i: int) -> None:
    try:
        if proto == "TCP":
            socket.create_connection((ip, port), timeout=0.6).close()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.6)
            s.sendto(b"x", (ip, port))
            s.recvfrom(10)
        out[i] = True
    except OSError:
        out[i] = False


def main() -> None:
    targets = json.loads(sys.argv[1])
    out: list[bool | None] = [None] * len(targets)
    threads = [threading.Thread(target=probe, args=(*t, out, i)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
