"""N UDP exchanges with one address, each from a new socket (so a new source port, a new conntrack entry).

Arguments: host, port, message, N. Prints one line per exchange: the answer, or error ... (2 s timeout).
"""

from __future__ import annotations

import socket
import sys


def main() -> None:
    host, port, msg, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    for _ in range(n):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            try:
                s.sendto(msg.encode(), (host, port))
                print(s.recv(1000).decode(), flush=True)
            except OSError as e:
                print(f"error {e}", flush=True)


if __name__ == "__main__":
    main()
