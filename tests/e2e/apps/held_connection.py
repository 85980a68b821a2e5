"""A TCP connection opened now and used later: does a NetworkPolicy applied in between cut it?

Arguments: host, port. Connects and prints "connected", then waits for a line on stdin (the test applies
its policy meanwhile), sends an HTTP/1.0 GET and prints the body, "closed" when the answer had none, or
"error ..." when the connection was cut.
"""

from __future__ import annotations

import socket
import sys


def main() -> None:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print("connected", flush=True)
    sys.stdin.readline()
    try:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(1000):  # HTTP/1.0: the server closes after the body
            data += chunk
        print(data.decode().rpartition("\r\n\r\n")[2] or "closed", flush=True)
    except OSError as e:
        print("error", e, flush=True)


if __name__ == "__main__":
    main()
