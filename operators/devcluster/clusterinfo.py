"""kube-public/cluster-info, published as kubeadm (and so kind) publishes it: a kubeconfig holding the
cluster's CA and API server URL and no credentials, readable by anyone, system:anonymous included.
Clients that know nothing of the cluster start from it; the knet chart's `controlPlaneEndpoint: auto`
reads the API server URL from it with Helm's `lookup`."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from .layout import Layout
from .nodes import api

NAMESPACE = "kube-public"
NAME = "cluster-info"
ROLE = "kubeadm:bootstrap-signer-clusterinfo"  # kubeadm's name for the Role and its RoleBinding


def kubeconfig(server: str, ca_pem: bytes) -> str:
    """kubeadm's cluster-info kubeconfig: one unnamed cluster, no users or contexts."""
    cluster = {"server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "", "cluster": cluster}],
                           "contexts": None, "current-context": "", "preferences": {}, "users": None})


def objects(server: str, ca_pem: bytes) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The ConfigMap, and the Role and RoleBinding that let system:anonymous get it (and nothing else)."""
    meta = {"name": NAME, "namespace": NAMESPACE}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                  "data": {"kubeconfig": kubeconfig(server, ca_pem)}}
    rbac = "rbac.authorization.k8s.io"
    role = {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": ROLE, "namespace": NAMESPACE},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [NAME], "verbs": ["get"]}]}
    binding = {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": {"name": ROLE, "namespace": NAMESPACE},
               "roleRef": {"apiGroup": rbac, "kind": "Role", "name": ROLE},
               "subjects": [{"apiGroup": rbac, "kind": "User", "name": "system:anonymous"}]}
    return config_map, role, binding


def _create_or_replace(create: Callable[[], object], replace: Callable[[], object] | None) -> None:
    try:
        create()
    except ApiException as e:
        if e.status != 409:
            raise
        if replace:
            replace()


def publish(layout: Layout) -> None:
    """Write kube-public/cluster-info and its RBAC with the cluster's CA and `layout.api_url` (idempotent)."""
    config_map, role, binding = objects(layout.api_url, (layout.pki / "ca.crt").read_bytes())
    core = client.CoreV1Api(api(layout))
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    # the API server makes kube-public itself, but perhaps not yet
    _create_or_replace(lambda: core.create_namespace({"metadata": {"name": NAMESPACE}}), None)
    _create_or_replace(lambda: core.create_namespaced_config_map(NAMESPACE, config_map),
                       lambda: core.replace_namespaced_config_map(NAME, NAMESPACE, config_map))
    _create_or_replace(lambda: rbac.create_namespaced_role(NAMESPACE, role),
                       lambda: rbac.replace_namespaced_role(ROLE, NAMESPACE, role))
    _create_or_replace(lambda: rbac.create_namespaced_role_binding(NAMESPACE, binding),
                       lambda: rbac.replace_namespaced_role_binding(ROLE, NAMESPACE, binding))
