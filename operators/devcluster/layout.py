"""Where a devcluster keeps its files and which addresses it uses (pure: no side effects).

Address plan (cluster index k = 0, 1, ...; each cluster gets its own underlay /24, so two
clusters run side by side; pod and service ranges repeat per cluster but live only inside
that cluster's namespaces and are never routed from the root namespace):

| what                 | IPv4                  | IPv6 (dual-stack)        |
| -------------------- | --------------------- | ------------------------ |
| underlay (bridge)    | 172.30.k.0/24         | fd00:172:30:k::/64       |
| node i (0 = control) | 172.30.k.(10+i)       | fd00:172:30:k::(10+i)    |
| external client      | 172.30.k.250          | fd00:172:30:k::250       |
| root namespace link  | 172.30.k.254          | fd00:172:30:k::254       |
| LoadBalancer pool    | 172.30.k.128/26       | fd00:172:30:k::1:0/112   |
| pods                 | 10.244.0.0/16, /24 per node | fd00:10:244::/56, /64 per node |
| services             | 10.96.0.0/16          | fd00:10:96::/112         |

The control plane runs in the first node's namespace (as kind runs it in the control-plane
container), so the control-plane endpoint is https://172.30.k.10:6443.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

PREFIX = "knet"
API_PORT = 6443
POD_CIDR_V4 = "10.244.0.0/16"
POD_CIDR_V6 = "fd00:10:244::/56"
SERVICE_CIDR_V4 = "10.96.0.0/16"
SERVICE_CIDR_V6 = "fd00:10:96::/112"
CLUSTER_DOMAIN = "cluster.local"


def state_root() -> Path:
    """Root of every devcluster's files (override with KNET_STATE)."""
    return Path(os.environ.get("KNET_STATE") or Path.home() / ".local/state/knet") / "clusters"


def created_paths_record() -> Path:
    """Mount targets the devclusters created on the machine (shared by all clusters: the last
    `down` removes them, as another cluster's pods may still mount there)."""
    return state_root() / "created-paths"


@dataclass(frozen=True)
class Layout:
    """Names, paths and addresses of one devcluster."""

    name: str
    index: int
    nodes: int = 2
    dual_stack: bool = False
    knet_image: str = "knet"  # the repository name (last path component) that runs knet's own command

    # --- files
    @property
    def dir(self) -> Path:
        return state_root() / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.dir / "pki"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    def node_dir(self, node: str) -> Path:
        return self.dir / "nodes" / node

    # --- namespaces and links
    @property
    def underlay_ns(self) -> str:
        return f"{PREFIX}-{self.name}-net"

    @property
    def external_ns(self) -> str:
        return f"{PREFIX}-{self.name}-ext"

    @property
    def root_link(self) -> str:
        """The root namespace's end of the veth into the underlay (<= 15 chars)."""
        return f"kn{self.index}-{self.name}"[:15]

    @property
    def ns_prefix(self) -> str:
        """Every network namespace of this cluster starts with this."""
        return f"{PREFIX}-{self.name}-"

    def node_name(self, i: int) -> str:
        if i == 0:
            return f"{self.name}-control-plane"
        return f"{self.name}-worker" + (str(i) if i > 1 else "")

    def node_ns(self, node: str) -> str:
        return f"{PREFIX}-{self.name}-node-{node.removeprefix(self.name + '-')}"

    def pod_ns(self, uid: str) -> str:
        return f"{PREFIX}-{self.name}-pod-{uid[:13]}"

    @property
    def node_names(self) -> list[str]:
        return [self.node_name(i) for i in range(self.nodes)]

    # --- addresses
    @property
    def underlay_v4(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"172.30.{self.index}.0/24")

    @property
    def underlay_v6(self) -> ipaddress.IPv6Network:
        return ipaddress.IPv6Network(f"fd00:172:30:{self.index:x}::/64")

    def _host(self, n: int) -> list[str]:
        out = [str(self.underlay_v4[n])]
        if self.dual_stack:
            out.append(str(self.underlay_v6[int(str(n), 16)]))
        return out

    def node_ips(self, i: int) -> list[str]:
        return self._host(10 + i)

    @property
    def external_ips(self) -> list[str]:
        return self._host(250)

    @property
    def root_ips(self) -> list[str]:
        return self._host(254)

    @property
    def api_host(self) -> str:
        return self.node_ips(0)[0]

    @property
    def api_url(self) -> str:
        return f"https://{self.api_host}:{API_PORT}"

    @property
    def pod_cidrs(self) -> list[str]:
        return [POD_CIDR_V4, POD_CIDR_V6] if self.dual_stack else [POD_CIDR_V4]

    @property
    def service_cidrs(self) -> list[str]:
        return [SERVICE_CIDR_V4, SERVICE_CIDR_V6] if self.dual_stack else [SERVICE_CIDR_V4]

    @property
    def lb_pool(self) -> list[str]:
        out = [f"172.30.{self.index}.128/26"]
        if self.dual_stack:
            out.append(f"fd00:172:30:{self.index:x}::1:0/112")
        return out

    @property
    def kubernetes_service_ip(self) -> str:
        return str(ipaddress.ip_network(SERVICE_CIDR_V4)[1])

    @property
    def dns_service_ip(self) -> str:
        return str(ipaddress.ip_network(SERVICE_CIDR_V4)[10])
