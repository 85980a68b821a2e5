"""The node's CNI configuration list: kindnet's (`ptp` with `host-local` IPAM, then `portmap`), named `knet`.

What the container runtime does with it, for each pod: `ptp` makes a veth pair (pod side `eth0` with an
address from `host-local`, node side holding the range's gateway address), a host route to the pod and a
default route in the pod through that gateway; `portmap` programs hostPorts. ptp turns IP forwarding on.
`ipMasq` is off: masquerading is `table inet knet-cni`'s job (`operators.cni.masquerade`), once for the
whole node, rather than one iptables chain per pod.

Choices:
- cniVersion 0.4.0, as kindnet: every plugin release since v0.8 (2019) speaks it, and containerd and
  CRI-O accept it; 1.0.0 needs plugins v1.0 or later.
- One `host-local` range set per podCIDR, in the Node's order: a dual-stack pod gets one address of each
  family, the first one (the pod's primary IP) of the family the cluster lists first.
- One default route per family present, in the same order.
- IPAM state in `/run/cni-ipam-state` (kindnet's): a tmpfs, so allocations do not outlive a reboot, when
  every pod's sandbox is made again anyway.
- The MTU only when given (the shell passes the MTU of the node's own link, as kindnet takes eth0's);
  without it the veth gets the kernel's default of 1500.
The bytes depend on the arguments only (keys in a fixed order, two-space indent, a final newline), so the
shell can compare them with the file on disk and write only when they differ.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Any

NAME = "knet"
DEFAULT_PATH = "/etc/cni/net.d/10-knet.conflist"  # `knet agent --cni-conflist`; the runtime takes the first by name
CNI_VERSION = "0.4.0"
IPAM_DATA_DIR = "/run/cni-ipam-state"
DEFAULT_ROUTES = {4: "0.0.0.0/0", 6: "::/0"}


def render_conflist(pod_cidrs: Iterable[str], mtu: int | None = None) -> str:
    """The conflist JSON for a node with `pod_cidrs` (at least one; validated CIDRs, e.g. a Node view's)."""
    networks = [ipaddress.ip_network(c, strict=False) for c in pod_cidrs]
    if not networks:
        raise ValueError("a CNI configuration needs at least one podCIDR")
    if mtu is not None and mtu <= 0:
        raise ValueError(f"MTU {mtu} is not positive")
    families = list(dict.fromkeys(n.version for n in networks))
    ptp: dict[str, Any] = {
        "type": "ptp",
        "ipMasq": False,
        "ipam": {
            "type": "host-local",
            "dataDir": IPAM_DATA_DIR,
            "ranges": [[{"subnet": str(n)}] for n in networks],
            "routes": [{"dst": DEFAULT_ROUTES[f]} for f in families],
        },
    }
    if mtu is not None:
        ptp["mtu"] = mtu
    conflist = {
        "cniVersion": CNI_VERSION,
        "name": NAME,
        "plugins": [ptp, {"type": "portmap", "capabilities": {"portMappings": True}}],
    }
    return json.dumps(conflist, indent=2) + "\n"


def is_ours(text: str) -> bool:
    """Whether a conflist file's text is one knet wrote (so that uninstalling removes only that)."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("name") == NAME
