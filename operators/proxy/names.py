"""Chain and set names for service ports and endpoints, safe in nftables and iptables.

Only validated strings go in: namespace, Service and port names are DNS labels ([a-z0-9-]), the
protocol is tcp/udp/sctp, addresses are normalised by `ipaddress` (IPv6 colons become dots).

- nftables: `<kind><family>-<HASH>-<namespace>/<name>/<protocol>/<port>`, e.g.
  `svc4-QX5SB2KD-default/web/tcp/http`, and for endpoints `...__<ip>/<port>`. The family keeps the
  IPv4 and IPv6 halves of a dual-stack port apart in one inet table; the hash (of everything after
  it) keeps names unique when cut to `NFT_NAME_MAX` and tells apart names differing in one digit.
- iptables: `KNET-<KIND>-<HASH16>` (28 characters at most, so no room for the readable part; rules
  carry it as a comment instead).
"""

from __future__ import annotations

import base64
import hashlib

from operators.proxy.model import ProxiedPort, Target

NFT_NAME_MAX = 240  # the kernel allows 255; leave room, like kube-proxy


def _hash(text: str, length: int) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:length]


def _nft(kind: str, family: int, path: str) -> str:
    name = f"{kind}{family}-{_hash(f'{family}/{path}', 8)}-{path}"
    return name if len(name) <= NFT_NAME_MAX else name[: NFT_NAME_MAX - 3] + "..."


def _endpoint_path(port: ProxiedPort, target: Target) -> str:
    return f"{port.path}__{target.ip.replace(':', '.')}/{target.port}"


def nft_port(kind: str, port: ProxiedPort) -> str:
    """kind: svc and local (ClientIP affinity: Cluster and Local policy), ext and npext (external addresses
    and node ports under externalTrafficPolicy Local; ext also for affinity), fw (source ranges)."""
    return _nft(kind, port.family, port.path)


def nft_endpoint(kind: str, port: ProxiedPort, target: Target) -> str:
    """kind: ep (DNAT chain) or aff (ClientIP affinity set)."""
    return _nft(kind, port.family, _endpoint_path(port, target))


def ipt_port(kind: str, port: ProxiedPort) -> str:
    """kind: SVC (Cluster policy), SVL (Local policy), EXT (external traffic), FW (source ranges)."""
    return f"KNET-{kind}-{_hash(port.path, 16)}"


def ipt_endpoint(port: ProxiedPort, target: Target) -> str:
    return f"KNET-SEP-{_hash(_endpoint_path(port, target), 16)}"
