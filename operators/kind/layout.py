"""Names, paths and addresses of knet's kind clusters (pure: no side effects).

Every kind cluster on the machine shares one network namespace, `knet-kind`, as every kind cluster on a
Docker host shares the `kind` network. podman runs there, so its bridge, NAT rules and forwarding live
there; the machine's root namespace gets one veth link into it and a route for the node network only.

| what                                   | IPv4              | IPv6                      |
| -------------------------------------- | ----------------- | ------------------------- |
| podman network `kind` (the nodes)      | 172.18.0.0/24     | fc00:f853:ccd:e793::/64   |
| link root <-> knet-kind                 | 172.18.255.1/30 <-> .2 |                      |
| LoadBalancer pool (top of the network) | 172.18.0.192/27   |                           |
| pods, services (inside the nodes only) | 10.244.0.0/16, 10.96.0.0/16 |                 |
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

NETNS = "knet-kind"
NETWORK = "kind"
NODE_NET_V4 = ipaddress.IPv4Network("172.18.0.0/24")
NODE_NET_V6 = ipaddress.IPv6Network("fc00:f853:ccd:e793::/64")
LINK_NET = ipaddress.IPv4Network("172.18.255.0/30")
ROOT_LINK = "knet-kind0"  # the link's name in the root namespace
NS_LINK = "host0"  # its peer in knet-kind
LB_POOL_V4 = "172.18.0.192/27"
API_PORT = 6443


def state_root() -> Path:
    """Where knet keeps its kind clusters' files (override with KNET_STATE)."""
    return Path(os.environ.get("KNET_STATE") or Path.home() / ".local/state/knet") / "kind"


def cache_root() -> Path:
    return Path(os.environ.get("KNET_CACHE") or Path.home() / ".cache/knet")


def root_link_addr() -> str:
    return str(LINK_NET.network_address + 1)


def ns_link_addr() -> str:
    return str(LINK_NET.network_address + 2)


@dataclass(frozen=True)
class KindLayout:
    """One kind cluster: `name` as kind's --name; nodes are `<name>-control-plane`, `<name>-worker[N]`."""

    name: str
    workers: int = 2

    @property
    def dir(self) -> Path:
        return state_root() / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        """The kubeconfig for the machine: the API server by the control-plane node's address."""
        return self.dir / "kubeconfig"

    @property
    def kind_config(self) -> Path:
        return self.dir / "kind-config.yaml"

    @property
    def control_plane(self) -> str:
        return f"{self.name}-control-plane"

    @property
    def node_names(self) -> list[str]:
        workers = [f"{self.name}-worker{'' if i == 0 else i + 1}" for i in range(self.workers)]
        return [self.control_plane, *workers]
