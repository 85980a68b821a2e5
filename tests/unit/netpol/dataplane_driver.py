"""Real packets through a rendered ruleset: run as root inside `unshare --net --mount`.

The current (new) network namespace plays the node; each pod is a named netns with a routed veth
(as in the devcluster), running small TCP/UDP servers. Reads {"ruleset", "pods": [[name, ip]],
"probes": [[src, dst_ip, port, proto]]} on stdin (src "node" probes from the node itself) and
prints one boolean per probe. Everything it creates dies with the namespaces when it exits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

# the pods' programs, shared with the e2e tests (run by path: the namespaces see this machine's files)
APPS = Path(__file__).resolve().parents[2] / "e2e" / "apps"


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def add_pod(i: int, name: str, ip: str) -> None:
    """A pod: netns `name` with `ip` on eth0, routed through veth`i` in the current namespace (the node)."""
    sh("ip", "netns", "add", name)
    sh("ip", "link", "add", f"veth{i}", "type", "veth", "peer", "name", "eth0", "netns", name)
    sh("ip", "addr", "add", "169.254.1.1/32", "dev", f"veth{i}")
    sh("ip", "link", "set", f"veth{i}", "up")
    sh("ip", "route", "add", f"{ip}/32", "dev", f"veth{i}")
    for cmd in (
        ["ip", "addr", "add", f"{ip}/32", "dev", "eth0"],
        ["ip", "link", "set", "eth0", "up"],
        ["ip", "link", "set", "lo", "up"],
        ["ip", "route", "add", "169.254.1.1", "dev", "eth0"],
        ["ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"],
    ):
        sh("ip", "netns", "exec", name, *cmd)


def main() -> None:
    spec = json.load(sys.stdin)
    sh("mount", "-t", "tmpfs", "tmpfs", "/run")  # our own /run/netns, private to this mount namespace
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh("ip", "link", "set", "lo", "up")
    listen = sorted({f"{port}/{proto}" for _, _, port, proto in spec["probes"]})
    servers = []
    for i, (name, ip) in enumerate(spec["pods"]):
        add_pod(i, name, ip)
        servers.append(
            subprocess.Popen(
                ["ip", "netns", "exec", name, sys.executable, str(APPS / "port_servers.py"), *listen],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for s in servers:
            assert s.stdout and s.stdout.readline().strip() == "ready"
        subprocess.run(["nft", "-f", "-"], input=spec["ruleset"], text=True, check=True)
        by_src: dict[str, list[int]] = {}
        for i, (src, *_) in enumerate(spec["probes"]):
            by_src.setdefault(src, []).append(i)
        results: list[bool | None] = [None] * len(spec["probes"])
        running = []
        for src, idx in by_src.items():
            targets = json.dumps([spec["probes"][i][1:] for i in idx])
            prefix = [] if src == "node" else ["ip", "netns", "exec", src]
            proc = subprocess.Popen(
                [*prefix, sys.executable, str(APPS / "reach_probe.py"), targets], stdout=subprocess.PIPE, text=True
            )
            running.append((idx, proc))
        for idx, proc in running:
            out, _ = proc.communicate(timeout=30)
            for i, ok in zip(idx, json.loads(out), strict=True):
                results[i] = ok
        print(json.dumps(results))
    finally:
        for s in servers:
            s.kill()
        time.sleep(0.05)


if __name__ == "__main__":
    main()
