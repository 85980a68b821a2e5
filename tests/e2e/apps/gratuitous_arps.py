"""Listen for the gratuitous ARPs that announce a LoadBalancer address, on the external client.

Arguments: the address, the MAC that must announce it, and a time limit in seconds. Reads ARP frames from a
packet socket and prints one line "<seconds since the first> <op>" (1 request, 2 reply) for each
gratuitous ARP of that address from that MAC, until they span 4 s or the time limit has passed: the test
checks that an announcement is repeated, as neighbours may miss the first.
"""

from __future__ import annotations

import socket
import struct
import sys
import time


def main() -> None:
    ip, mac = socket.inet_aton(sys.argv[1]), bytes.fromhex(sys.argv[2].replace(":", ""))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    s.settimeout(1)
    deadline, first = time.monotonic() + float(sys.argv[3]), None
    while time.monotonic() < deadline:
        try:
            frame = s.recv(64)
        except TimeoutError:
            continue
        op, sha, spa, tpa = struct.unpack("!6xH6s4s6x4s", frame[14:42].ljust(28, b"\0"))
        if sha == mac and spa == tpa == ip:
            now = time.monotonic()
            first = first or now
            print(f"{now - first:.2f} {op}", flush=True)
            if now - first >= 4:
                break


if __name__ == "__main__":
    main()
