"""Node objects: registered by the supervisor with admin rights (role labels are not a node's
to set, NodeRestriction forbids it, as kubeadm sets them in kind), kept Ready by each node runtime."""

from __future__ import annotations

import platform

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from .layout import Layout


def api(layout: Layout, who: str = "admin") -> client.ApiClient:
    """An API client with the credentials `<who>.kubeconfig` of the cluster."""
    return config.new_client_from_config(str(layout.dir / f"{who}.kubeconfig"))


def node_labels(layout: Layout, i: int) -> dict[str, str]:
    name = layout.node_name(i)
    role = "control-plane" if i == 0 else "worker"
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        f"node-role.kubernetes.io/{role}": "",
        "knet.io/devcluster": layout.name,
    }
    if i == 0:
        labels["ingress-ready"] = "true"
    return labels


def register_nodes(layout: Layout) -> None:
    core = client.CoreV1Api(api(layout))
    for i, name in enumerate(layout.node_names):
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": node_labels(layout, i)},
        }
        try:
            core.create_node(body)
        except ApiException as e:
            if e.status != 409:
                raise
            core.patch_node(name, {"metadata": {"labels": node_labels(layout, i)}})


def nodes_ready(layout: Layout) -> bool:
    core = client.CoreV1Api(api(layout))
    nodes = {n.metadata.name: n for n in core.list_node().items}
    for name in layout.node_names:
        n = nodes.get(name)
        if n is None or not n.spec.pod_cidrs:
            return False
        conds = {c.type: c.status for c in (n.status.conditions or [])}
        if conds.get("Ready") != "True":
            return False
    return True
