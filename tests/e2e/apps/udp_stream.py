"""A pod's main process: one UDP flow that never ends, to see what happens to it when its endpoint goes.

One socket bound to the fixed source port 40000 asks $TARGET:$PORT for `hostname` every 0.2 s, so every
datagram belongs to the same conntrack entry; the test reads from the pod's log which endpoint answered
(one line per datagram: the answer, or timeout).
"""

from __future__ import annotations

import os
import socket
import time


def main() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", 40000))
    s.settimeout(0.5)
    while True:
        s.sendto(b"hostname", (os.environ["TARGET"], int(os.environ["PORT"])))
        try:
            print(s.recv(1000).decode(), flush=True)
        except TimeoutError:
            print("timeout", flush=True)
        time.sleep(0.2)


if __name__ == "__main__":
    main()
