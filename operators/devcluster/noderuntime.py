"""The node runtime: the devcluster's kubelet. One process per node, running in the node's
network namespace with the node's own credentials (system:node:<name>, so the Node
authorizer and NodeRestriction apply): it keeps the Node Ready and its Lease fresh, routes
the peers' podCIDRs, and runs the pods bound to the node (see podworker)."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import platform
import shutil
import signal
import sys
import threading
import time
import uuid
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from . import sandbox, upstream
from .layout import Layout, created_paths_record
from .nodes import api
from .podhost import PodHost
from .podspec import Lookup
from .podworker import PodWorker, now_rfc3339
from .sandbox import IPAM
from .state import load_layout

Obj = dict[str, Any]
LEASE_SECONDS = 40


def micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeRuntime:
    def __init__(self, layout: Layout, node: str) -> None:
        self.layout = layout
        self.node = node
        self.index = layout.node_names.index(node)
        self.node_ns = layout.node_ns(node)
        self.node_ips = layout.node_ips(self.index)
        self.api = api(layout, f"node-{node}")
        self.core = client.CoreV1Api(self.api)
        self.coord = client.CoordinationV1Api(self.api)
        self.dir = layout.node_dir(node)
        self.pods_dir = self.dir / "pods"
        self.created_paths = created_paths_record()
        self.knet_image = layout.knet_image
        self.node_resolv = ""  # the node has no upstream resolver: the devcluster has no way out
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.Lock()
        self.pod_cidrs: list[str] = []
        self.ipam: IPAM
        self.host: PodHost  # what its pod workers see of it, once the podCIDRs are known
        self.network_ready = False

    def log(self, msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    # --- node and lease
    def node_status(self) -> Obj:
        ready = self.network_ready
        stamp = now_rfc3339()
        cond = [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastHeartbeatTime": stamp,
                "reason": "KubeletReady" if ready else "NetworkPluginNotReady",
                "message": "knet node runtime is posting ready status" if ready else "waiting for the podCIDR",
            },
        ]
        for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            cond.append(
                {
                    "type": ctype,
                    "status": "False",
                    "lastHeartbeatTime": stamp,
                    "reason": f"KubeletHasNo{ctype}",
                }
            )
        capacity = {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        return {
            "conditions": cond,
            # addresses merge by type, which would fold the two InternalIPs of a dual-stack node: replace
            "addresses": [{"$patch": "replace"}]
            + [{"type": "InternalIP", "address": a} for a in self.node_ips]
            + [{"type": "Hostname", "address": self.node}],
            "capacity": capacity,
            "allocatable": capacity,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, self.node).hex,
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.node)),
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": "knet devcluster (network namespaces)",
                "containerRuntimeVersion": "knet-devcluster://0.1",
                "kubeletVersion": upstream.versions()["KUBE_VERSION"],
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def heartbeat(self) -> None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.node, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": self.node,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": micro_now(),
            },
        }
        try:
            self.coord.patch_namespaced_lease(self.node, "kube-node-lease", {"spec": body["spec"]})
        except ApiException as e:
            if e.status != 404:
                raise
            try:
                self.coord.create_namespaced_lease("kube-node-lease", body)
            except ApiException as created:
                if created.status != 409:  # the heartbeat thread made it meanwhile
                    raise
        self.core.patch_node_status(self.node, {"status": self.node_status()})

    def heartbeat_loop(self) -> None:
        while True:
            try:
                self.heartbeat()
            except ApiException as e:
                self.log(f"heartbeat failed: {e.status} {e.reason}: {e.body}")
            except Exception as e:  # noqa: BLE001 - keep beating through API hiccups
                self.log(f"heartbeat failed: {e!r}")
            time.sleep(10)

    def wait_pod_cidrs(self) -> None:
        """The node's podCIDRs, once kube-controller-manager has allocated them."""
        while not self.pod_cidrs:
            try:
                self.pod_cidrs = list(self.core.read_node(self.node).spec.pod_cidrs or [])
            except ApiException as e:
                self.log(f"reading node {self.node} failed: {e.status} {e.reason}")
            if not self.pod_cidrs:
                time.sleep(0.5)

    # --- what pod workers get of the node
    def pod_host(self) -> PodHost:
        return PodHost(
            node=self.node,
            node_ns=self.node_ns,
            node_ips=tuple(self.node_ips),
            pod_cidrs=tuple(self.pod_cidrs),
            node_resolv=self.node_resolv,
            dns_service_ip=self.layout.dns_service_ip,
            kubernetes_service_ip=self.layout.kubernetes_service_ip,
            knet_image=self.knet_image,
            pods_dir=self.pods_dir,
            created_paths=self.created_paths,
            pod_ns=self.layout.pod_ns,
            allocate_ips=self.ipam.allocate,
            release_ips=self.ipam.release,
            lookup=self.lookup,
            token=self.token,
            event=self.event,
            patch_status=self.patch_status,
            delete_pod=self.delete_pod,
            forget=self.forget,
            log=self.log,
        )

    def lookup(self, namespace: str) -> Lookup:
        def get(kind: str, name: str) -> dict[str, str] | None:
            try:
                if kind == "configMap":
                    return dict(self.core.read_namespaced_config_map(name, namespace).data or {})
                data = self.core.read_namespaced_secret(name, namespace).data or {}
                return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
            except ApiException as e:
                if e.status in (403, 404):
                    return None
                raise

        return get

    def token(self, ns: str, pod: str, uid: str, sa: str, audiences: list[str] | None, exp: int) -> tuple[str, int]:
        spec: Obj = {
            "expirationSeconds": exp,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid},
        }
        if audiences:
            spec["audiences"] = audiences
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        r = self.core.create_namespaced_service_account_token(sa, ns, body)
        return r.status.token, exp

    def event(self, pod: Obj, reason: str, message: str, kind: str) -> None:
        md = pod["metadata"]
        stamp = now_rfc3339()
        body = {
            "metadata": {"name": f"{md['name']}.{uuid.uuid4().hex[:16]}", "namespace": md["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": md["name"],
                "namespace": md["namespace"],
                "uid": md["uid"],
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": "kubelet", "host": self.node},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node,
        }
        try:
            self.core.create_namespaced_event(md["namespace"], body)
        except ApiException as e:
            self.log(f"event {reason} for {md['namespace']}/{md['name']} failed: {e.status}")

    def patch_status(self, ns: str, name: str, status: Obj) -> bool:
        try:
            self.core.patch_namespaced_pod_status(name, ns, {"status": status})
            return True
        except ApiException as e:
            if e.status != 404:
                self.log(f"status of {ns}/{name} not written: {e.status} {e.reason}")
            return False

    def delete_pod(self, ns: str, name: str, uid: str) -> None:
        try:
            self.core.delete_namespaced_pod(
                name,
                ns,
                grace_period_seconds=0,
                body={"preconditions": {"uid": uid}, "gracePeriodSeconds": 0},
            )
        except ApiException as e:
            if e.status not in (404, 409):
                self.log(f"final delete of {ns}/{name} failed: {e.status}")

    def forget(self, uid: str) -> None:
        with self.lock:
            self.workers.pop(uid, None)

    # --- pods
    def on_pod(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            w = self.workers.get(uid)
            if w is None:
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and not (
                    self.pods_dir / uid
                ).exists():
                    return  # finished before this runtime started: nothing left to run
                w = self.workers[uid] = PodWorker(self.host, pod)
                w.start()
            else:
                w.update(pod)

    def on_pod_gone(self, uid: str) -> None:
        with self.lock:
            w = self.workers.get(uid)
        if w:
            w.deleted()

    def pods_loop(self) -> None:
        selector = f"spec.nodeName={self.node}"
        while True:
            try:
                lst = self.core.list_pod_for_all_namespaces(field_selector=selector)
                live = set()
                for p in lst.items:
                    obj = self.api.sanitize_for_serialization(p)
                    live.add(obj["metadata"]["uid"])
                    self.on_pod(obj)
                with self.lock:
                    stale = [u for u in self.workers if u not in live]
                for u in stale:
                    self.on_pod_gone(u)
                w = watch.Watch()
                for ev in w.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=lst.metadata.resource_version,
                    timeout_seconds=60,
                ):
                    obj = ev["raw_object"]
                    if ev["type"] == "DELETED":
                        self.on_pod_gone(obj["metadata"]["uid"])
                    elif ev["type"] in ("ADDED", "MODIFIED"):
                        self.on_pod(obj)
            except Exception as e:  # noqa: BLE001 - relist after any watch failure
                self.log(f"pod watch restarted: {e!r}")
                time.sleep(1)

    def clean_previous(self) -> None:
        """Sandboxes of an earlier run of this runtime: its processes are gone with it, so start afresh."""
        if not self.pods_dir.exists():
            return
        for d in self.pods_dir.iterdir():
            sandbox.destroy(self.layout.pod_ns(d.name), d.name)
            shutil.rmtree(d, ignore_errors=True)
        (self.dir / "ipam.json").unlink(missing_ok=True)

    def run(self) -> None:
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.clean_previous()
        threading.Thread(target=self.heartbeat_loop, daemon=True, name="heartbeat").start()
        self.wait_pod_cidrs()
        self.ipam = IPAM(self.dir / "ipam.json", self.pod_cidrs)
        self.host = self.pod_host()
        self.network_ready = True
        self.heartbeat()
        self.log(f"node {self.node} ready with podCIDRs {self.pod_cidrs}")
        self.pods_loop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cluster", required=True)
    p.add_argument("--node", required=True)
    a = p.parse_args()
    rt = NodeRuntime(load_layout(a.cluster), a.node)

    def stop(*_: object) -> None:
        with rt.lock:
            workers = list(rt.workers.values())
        for w in workers:
            w.kill_all(2)
            w.teardown()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    rt.run()


if __name__ == "__main__":
    main()
