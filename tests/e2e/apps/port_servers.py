"""The servers of a pod in the NetworkPolicy dataplane test: accept TCP, echo UDP, on the ports asked.

Arguments: PORT/PROTO each (e.g. 80/TCP 53/UDP). A TCP server accepts and closes (an accepted connection
is the proof of reach); a UDP one sends each datagram back (UDP has no handshake to observe). Prints
"ready" once every socket listens, then serves until killed.
"""

from __future__ import annotations

import socket
import sys
import threading


def tcp(port: int) -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        c.close()


def udp(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, addr = s.recvfrom(100)
        s.sendto(data, addr)


def main() -> None:
    for spec in sys.argv[1:]:
        port, proto = spec.split("/")
        threading.Thread(target=tcp if proto == "TCP" else udp, args=(int(port),), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
