"""The real control plane: controllers act on what we create, RBAC denies what it should."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

from operators.devcluster import testapps
from tests.e2e.harness import Cluster, wait_for


def test_startup_time_is_within_budget(cluster: Cluster) -> None:
    print(f"API ready in {cluster.startup['api']:.1f}s; nodes ready in {cluster.startup['nodes']:.1f}s")
    assert cluster.startup["api"] < 30
    assert cluster.startup["nodes"] < 45


def test_controllers_create_replicaset_pods_and_endpointslices(cluster: Cluster, namespace: str) -> None:
    cluster.apply(testapps.netexec(namespace))
    rs = wait_for(lambda: cluster.get("replicasets", "-n", namespace)["items"], "a ReplicaSet")
    assert rs[0]["metadata"]["ownerReferences"][0]["name"] == "web"
    def ready_pods() -> list[dict] | None:
        ready = [p for p in cluster.pods(namespace, "app=web") if cluster.condition(p, "Ready") == "True"]
        return ready if len(ready) == 2 else None

    pods = wait_for(ready_pods, "2 ready pods", timeout=90)
    ips = sorted(p["status"]["podIP"] for p in pods)

    def slice_ips() -> list[str] | None:
        slices = cluster.get("endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=web")["items"]
        got = sorted(
            a for s in slices for e in s.get("endpoints") or [] if e["conditions"].get("ready") for a in e["addresses"]
        )
        return got if got == ips else None

    wait_for(slice_ips, f"EndpointSlice with {ips}", timeout=60)
    slices = cluster.get("endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=web")["items"]
    assert slices[0]["ports"][0]["port"] == 8080  # targetPort by name resolved by the controller


def test_rbac_denies_a_service_account_what_its_role_does_not_grant(cluster: Cluster, namespace: str) -> None:
    cluster.apply(f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: {namespace}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader, namespace: {namespace}}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader, namespace: {namespace}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: {namespace}}}]
""")
    token = cluster.kubectl("create", "token", "reader", "-n", namespace).strip()
    api, ca = cluster.config("server"), cluster.config("certificate-authority")
    ctx = ssl.create_default_context(cafile=ca)

    def call(path: str) -> int:
        req = urllib.request.Request(api + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    wait_for(lambda: call(f"/api/v1/namespaces/{namespace}/pods") == 200, "the Role to grant pods list", 20)
    assert call(f"/api/v1/namespaces/{namespace}/secrets") == 403
    assert call(f"/api/v1/namespaces/{namespace}/services") == 403
    assert call("/api/v1/nodes") == 403
    assert (
        cluster.kubectl(
            "auth",
            "can-i",
            "delete",
            "pods",
            "-n",
            namespace,
            f"--as=system:serviceaccount:{namespace}:reader",
            check=False,
        )
        .strip()
        .startswith("no")
    )
