"""A WebSocket client for the Ingress e2e tests: does the upgrade pass through nginx, and do frames flow?

Arguments: the address nginx listens on (port 80) and the Host. Sends the upgrade for /chat and one
masked text frame "hello"; prints the upgrade's status line, then the echo server's answer frame.
"""

from __future__ import annotations

import base64
import os
import socket
import sys


def exchange(s: socket.socket, host: str, text: bytes = b"hello") -> tuple[str, str]:
    """Upgrade the connection `s`, send `text` in one frame: (the upgrade's status line, the answer frame)."""
    s.sendall(b"GET /chat HTTP/1.1\r\nHost: " + host.encode() + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(text)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(text)))
    while len(rest) < 2 or len(rest) < 2 + rest[1]:
        rest += s.recv(4096)
    return head.split(b"\r\n")[0].decode(), rest[2:2 + rest[1]].decode()


def main() -> None:
    status, echo = exchange(socket.create_connection((sys.argv[1], 80), 10), sys.argv[2])
    print(status)
    print(echo)


if __name__ == "__main__":
    main()
