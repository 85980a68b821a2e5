"""What a pod worker needs from its node, in one place: the values and calls the node runtime offers it.

The runtime (noderuntime) builds one `PodHost` once the node's podCIDRs are known and hands it to every
pod worker (podworker). The worker imports this module and never the runtime, so the two do not depend on
each other, and a worker can be driven in a unit test by a `PodHost` of plain functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .podspec import Lookup

Obj = dict[str, Any]
# (namespace, pod, pod uid, ServiceAccount, audiences or None, expirationSeconds) -> (token, expirationSeconds)
TokenRequest = Callable[[str, str, str, str, "list[str] | None", int], tuple[str, int]]


@dataclass(frozen=True)
class PodHost:
    """A node as its pods' workers see it."""

    node: str
    node_ns: str  # the node's network namespace (hostNetwork pods run there)
    node_ips: tuple[str, ...]  # its InternalIPs, one per family
    pod_cidrs: tuple[str, ...]
    node_resolv: str  # the node's own resolv.conf (for dnsPolicy Default)
    dns_service_ip: str
    kubernetes_service_ip: str
    knet_image: str  # the repository name that runs knet's own command
    pods_dir: Path  # one directory per pod uid below it
    created_paths: Path  # where mount targets made on the machine are recorded
    pod_ns: Callable[[str], str]  # pod uid -> its network namespace
    allocate_ips: Callable[[str], list[str]]  # pod uid -> its addresses (the same again if it has them)
    release_ips: Callable[[str], None]
    lookup: Callable[[str], Lookup]  # namespace -> ConfigMap and Secret data there
    token: TokenRequest
    event: Callable[[Obj, str, str, str], None]  # (pod, reason, message, type)
    patch_status: Callable[[str, str, Obj], bool]  # (namespace, name, status) -> written
    delete_pod: Callable[[str, str, str], None]  # (namespace, name, uid): the final delete after termination
    forget: Callable[[str], None]  # pod uid: its worker has ended
    log: Callable[[str], None]
