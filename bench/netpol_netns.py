"""The kernel side of bench/test_netpol_bench.py: run as root inside `unshare --net --mount` (a throwaway
network namespace playing the node), reading a JSON job on stdin and printing JSON results.

- {"apply": [ruleset, ...], "show": "map inet knet-netpol ingress-v4"}: `nft -f` each ruleset in turn
  (the first creates the table, the rest replace it, as the agent's syncs do); seconds per apply, and
  the listing of `show` after the last one.
- {"latency": [ruleset, ...], "client": ip, "server": ip, "port": n, "closed": n, "connects": n,
  "rounds": n}: two pods on this node; per ruleset, TCP connect times client -> server:port in each
  round (the rulesets take turns, so a busy moment of the machine falls on all of them), and whether a
  connect to the port `closed` (no rule allows it) still succeeds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.unit.netpol.dataplane_driver import add_pod, sh

SERVER = r"""
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(512)
    while True:
        s.accept()[0].close()
for port in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(port),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

CLIENT = r"""
import json, socket, sys, time
ip, port, closed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
times = []
for _ in range(n):
    t = time.perf_counter()
    socket.create_connection((ip, port), timeout=2).close()
    times.append(time.perf_counter() - t)
try:
    socket.create_connection((ip, closed), timeout=0.5).close()
    open_ = True
except OSError:
    open_ = False
print(json.dumps({"times": times, "closed_open": open_}))
"""


def nft(text: str) -> float:
    t = time.perf_counter()
    subprocess.run(["nft", "-f", "-"], input=text, text=True, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    job = json.load(sys.stdin)
    sh("mount", "-t", "tmpfs", "tmpfs", "/run")  # our own /run/netns, private to this mount namespace
    if "apply" in job:
        seconds = [nft(text) for text in job["apply"]]
        shown = subprocess.run(["nft", "list", *job["show"].split()], capture_output=True, text=True).stdout
        print(json.dumps({"seconds": seconds, "shown": shown}))
        return
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh("ip", "link", "set", "lo", "up")
    add_pod(0, "client", job["client"])
    add_pod(1, "server", job["server"])
    pinned = ["taskset", "-c", "1", sys.executable, "-c"]  # client and server on one core: less jitter
    server = subprocess.Popen(["ip", "netns", "exec", "server", *pinned, SERVER, str(job["port"]),
                               str(job["closed"])], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout and server.stdout.readline().strip() == "ready"
        out: list[dict] = [{"rounds": []} for _ in job["latency"]]
        argv = [job["server"], str(job["port"]), str(job["closed"]), str(job["connects"])]
        for _ in range(job["rounds"]):
            for text, result in zip(job["latency"], out, strict=True):
                nft(text)
                proc = subprocess.run(["ip", "netns", "exec", "client", *pinned, CLIENT, *argv],
                                      capture_output=True, text=True, check=True)
                got = json.loads(proc.stdout)
                result["rounds"].append(got["times"])
                result["closed_open"] = got["closed_open"]
        print(json.dumps(out))
    finally:
        server.kill()


if __name__ == "__main__":
    main()
