"""What a kind cluster may and may not change on the machine, read so that a test can compare.

The machine's root namespace keeps its routes (but for the one route over knet-kind's link), its global
kernel settings and its nftables/iptables rules; knet-kind routes nothing off the machine; `down` leaves
no container, volume, network, namespace, link or file behind. Everything here reads; nothing sends
traffic.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from operators.devcluster import netns

from .layout import LINK_NET, NETNS, NETWORK, NODE_NET_V4, NODE_NET_V6, ROOT_LINK, state_root

SYSCTLS_FILE = Path(__file__).parent / "node" / "sysctls"
# Forwarding is per namespace: the root's must stay as it is while knet-kind's is on.
ROOT_NET_SYSCTLS = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding")


def _out(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def global_sysctls() -> tuple[str, ...]:
    """The global settings a kind node writes (the node image shields the same list)."""
    lines = SYSCTLS_FILE.read_text().splitlines()
    return tuple(s.strip() for s in lines if s.strip() and not s.startswith("#"))


@dataclass(frozen=True)
class RootState:
    """The root namespace as a cluster must leave it."""

    routes: tuple[str, ...]
    sysctls: tuple[tuple[str, str], ...]
    ruleset: str

    def without_link(self) -> RootState:
        """The state minus what knet-kind's link adds (its connected route and the node network's)."""
        return RootState(tuple(r for r in self.routes if ROOT_LINK not in r), self.sysctls, self.ruleset)


def root_state() -> RootState:
    routes = [f"v4 {r}" for r in _out("ip", "-4", "route", "show", "table", "all").splitlines()]
    routes += [f"v6 {r}" for r in _out("ip", "-6", "route", "show", "table", "all").splitlines()]
    values = []
    for key in (*global_sysctls(), *ROOT_NET_SYSCTLS):
        p = Path("/proc/sys") / key
        values.append((key, p.read_text().strip() if p.exists() else "(absent)"))
    return RootState(tuple(sorted(routes)), tuple(values), _out("nft", "list", "ruleset"))


def routes_off_machine() -> list[str]:
    """knet-kind's routes that lead anywhere but its node network and its link (should be none)."""
    ours = (NODE_NET_V4, NODE_NET_V6, LINK_NET, ipaddress.ip_network("fe80::/64"))
    bad = []
    for fam in ("-4", "-6"):
        out = _out("ip", "-n", NETNS, fam, "-j", "route", "show", "table", "all")
        for r in json.loads(out or "[]"):
            dst = r.get("dst", "")
            if r.get("type") in ("local", "broadcast", "multicast", "anycast") or r.get("table") == "local":
                continue
            if dst == "default" or not any(
                ipaddress.ip_network(dst, strict=False).subnet_of(n)  # type: ignore[arg-type]
                for n in ours if ipaddress.ip_network(dst, strict=False).version == n.version
            ):
                bad.append(f"{fam} {dst} dev {r.get('dev')}")
    return bad


def leftovers(name: str) -> list[str]:
    """What a cluster called `name`, or knet's kind set-up, left on the machine."""
    found = []
    if netns.exists(NETNS):
        found.append(f"network namespace {NETNS}")
    if ROOT_LINK in _out("ip", "-br", "link", "show"):
        found.append(f"link {ROOT_LINK}")
    label = f"label=io.x-k8s.kind.cluster={name}"
    for kind, cmd in (("container", ["podman", "ps", "-a", "--filter", label, "--format", "{{.Names}}"]),
                      ("volume", ["podman", "volume", "ls", "--filter", label, "--format", "{{.Name}}"])):
        found += [f"podman {kind} {n}" for n in _out(*cmd).split()]
    if subprocess.run(["podman", "network", "exists", NETWORK], capture_output=True).returncode == 0:
        found.append(f"podman network {NETWORK}")
    if state_root().exists():
        found.append(f"directory {state_root()}")
    return found
