"""Pod sandboxes: a network namespace per pod with a veth to its node, an address from the
node's podCIDR (kept in a small IPAM file), and its resolv.conf under /etc/netns/<netns>/.

Wiring (as Calico's): the pod has `<ip>/32` on eth0 and a default route via the first
address of the podCIDR, which every pod veth carries on the node side; the node routes
`<ip>/32` to the pod's veth. The runtime calling this runs in the node's namespace.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import shutil
import threading
from pathlib import Path

from . import netns
from .netns import ip


class IPAM:
    """Addresses of one node's podCIDRs, persisted so a runtime restart never hands one out twice."""

    def __init__(self, path: Path, cidrs: list[str]) -> None:
        self.path = path
        self.cidrs = [ipaddress.ip_network(c) for c in cidrs]
        self.lock = threading.Lock()
        self.used: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def allocate(self, owner: str) -> list[str]:
        """One address per podCIDR (per family) for `owner`; the same ones again if it already has them."""
        with self.lock:
            mine = [a for a, o in self.used.items() if o == owner]
            if mine:
                return sorted(mine, key=lambda a: ":" in a)
            out = []
            for net in self.cidrs:
                for host in net.hosts():
                    a = str(host)
                    if host == gateway(net) or a in self.used:
                        continue
                    self.used[a] = owner
                    out.append(a)
                    break
                else:
                    raise RuntimeError(f"podCIDR {net} is exhausted")
            self._save()
            return out

    def release(self, owner: str) -> None:
        with self.lock:
            self.used = {a: o for a, o in self.used.items() if o != owner}
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.used, indent=1, sort_keys=True))


def gateway(
    net: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return net[1]


def veth_name(uid: str) -> str:
    return "kv" + hashlib.sha1(uid.encode()).hexdigest()[:11]


def create(pod_ns: str, uid: str, ips: list[str], cidrs: list[str], resolv: str) -> None:
    """Namespace, veth pair, addresses and routes of one pod (idempotent: redone from scratch)."""
    destroy(pod_ns, uid)
    netns.add(pod_ns)
    veth = veth_name(uid)
    ip(None, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pod_ns)
    netns.sysctl(pod_ns, net__ipv6__conf__all__accept_dad="0", net__ipv6__conf__default__accept_dad="0")
    ip(None, "link", "set", veth, "up")
    ip(pod_ns, "link", "set", "eth0", "up")
    for addr in ips:
        v6 = ":" in addr
        net = next(ipaddress.ip_network(c) for c in cidrs if (":" in c) == v6)
        gw = str(gateway(net))
        plen = 128 if v6 else 32
        ip(None, "addr", "replace", f"{gw}/{plen}", "dev", veth, *(["nodad"] if v6 else []))
        ip(pod_ns, "addr", "add", f"{addr}/{plen}", "dev", "eth0", *(["nodad"] if v6 else []))
        ip(pod_ns, "route", "add", gw, "dev", "eth0", "scope", "link")
        ip(pod_ns, "route", "add", "default", "via", gw, "dev", "eth0")
        ip(None, "route", "replace", f"{addr}/{plen}", "dev", veth)
    etc = Path("/etc/netns") / pod_ns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(resolv)


def destroy(pod_ns: str, uid: str) -> None:
    netns.delete(pod_ns)
    ip(None, "link", "del", veth_name(uid), check=False)
    shutil.rmtree(Path("/etc/netns") / pod_ns, ignore_errors=True)
