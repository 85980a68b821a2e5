"""Nodes and pods with real networks: spreading, cross-node HTTP, readiness, deletion,
DaemonSets, hostNetwork, downward API, service-account tokens, and bad pods."""

from __future__ import annotations

import subprocess

from operators.devcluster import testapps
from operators.devcluster.testapps import AGNHOST
from tests.e2e.harness import Cluster, wait_for


def netexec(ns: str, replicas: int = 4) -> str:
    """netexec pods that are ready while /tmp/ready exists (an init container makes it)."""
    ready = {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1, "failureThreshold": 1}
    return testapps.netexec(ns, "netexec", replicas, readiness=ready, init_command="touch /tmp/ready")


def ready_pods(cluster: Cluster, ns: str, selector: str, count: int) -> list[dict]:
    def check() -> list[dict] | None:
        pods = cluster.pods(ns, selector)
        ok = [p for p in pods if cluster.condition(p, "Ready") == "True" and not p["metadata"].get("deletionTimestamp")]
        return ok if len(ok) == count else None

    return wait_for(check, f"{count} ready pods {selector} in {ns}", timeout=120)


def slice_endpoints(cluster: Cluster, ns: str, svc: str) -> dict[str, bool]:
    slices = cluster.get("endpointslices", "-n", ns, "-l", f"kubernetes.io/service-name={svc}")["items"]
    return {e["addresses"][0]: bool(e["conditions"].get("ready")) for s in slices for e in s.get("endpoints") or []}


def test_nodes_are_registered_ready_with_pod_cidrs_and_roles(cluster: Cluster) -> None:
    nodes = {n["metadata"]["name"]: n for n in cluster.get("nodes")["items"]}
    assert sorted(nodes) == [f"{cluster.name}-control-plane", f"{cluster.name}-worker"]
    cp = nodes[f"{cluster.name}-control-plane"]
    assert "node-role.kubernetes.io/control-plane" in cp["metadata"]["labels"]
    assert "node-role.kubernetes.io/worker" in nodes[f"{cluster.name}-worker"]["metadata"]["labels"]
    cidrs = set()
    for n in nodes.values():
        assert cluster.condition(n, "Ready") == "True"
        assert n["metadata"]["labels"]["kubernetes.io/hostname"] == n["metadata"]["name"]
        assert n["spec"]["podCIDRs"][0].startswith("10.244.")
        cidrs.add(n["spec"]["podCIDRs"][0])
        assert any(a["type"] == "InternalIP" and a["address"].startswith("172.30.") for a in n["status"]["addresses"])
    assert len(cidrs) == 2
    leases = cluster.get("leases", "-n", "kube-node-lease")["items"]
    assert {lease["metadata"]["name"] for lease in leases} >= set(nodes)


def test_pods_spread_talk_across_nodes_and_follow_readiness_and_deletion(cluster: Cluster, namespace: str) -> None:
    cluster.apply(netexec(namespace))
    pods = ready_pods(cluster, namespace, "app=netexec", 4)
    by_node: dict[str, list[dict]] = {}
    for p in pods:
        by_node.setdefault(p["spec"]["nodeName"], []).append(p)
        assert p["status"]["podIP"].startswith("10.244.")
        assert p["status"]["phase"] == "Running"
        assert p["status"]["containerStatuses"][0]["ready"] is True
    assert len(by_node) == 2, f"pods did not spread over both nodes: {list(by_node)}"
    a, b = (by_node[n][0] for n in sorted(by_node))
    wait_for(
        lambda: len([r for r in slice_endpoints(cluster, namespace, "netexec").values() if r]) == 4,
        "4 ready endpoints",
        60,
    )

    # HTTP from a pod on node A to a pod on node B answers with B's hostname
    out = cluster.exec(
        f"{namespace}/{a['metadata']['name']}",
        "python3",
        "-c",
        f"import urllib.request;print(urllib.request.urlopen('http://{b['status']['podIP']}:8080/hostname',"
        "timeout=5).read().decode())",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b["metadata"]["name"]
    # and the client address B sees is A's pod address (no NAT between pods)
    out = cluster.exec(
        f"{namespace}/{a['metadata']['name']}",
        "python3",
        "-c",
        f"import urllib.request;print(urllib.request.urlopen('http://{b['status']['podIP']}:8080/clientip',"
        "timeout=5).read().decode())",
    )
    assert out.stdout.strip().rsplit(":", 1)[0] == a["status"]["podIP"]

    # readiness probe failing flips the endpoint to not ready
    assert cluster.exec(f"{namespace}/{b['metadata']['name']}", "rm", "/tmp/ready").returncode == 0
    b_ip = b["status"]["podIP"]
    wait_for(lambda: slice_endpoints(cluster, namespace, "netexec").get(b_ip) is False, "endpoint not ready", 30)
    cluster.exec(f"{namespace}/{b['metadata']['name']}", "touch", "/tmp/ready")
    wait_for(lambda: slice_endpoints(cluster, namespace, "netexec").get(b_ip) is True, "endpoint ready again", 30)

    # deleting a pod removes it from the EndpointSlice and its namespace from the machine
    uid = b["metadata"]["uid"]
    cluster.kubectl("delete", "pod", "-n", namespace, b["metadata"]["name"], "--wait=true", "--timeout=60s")
    wait_for(lambda: b_ip not in slice_endpoints(cluster, namespace, "netexec"), "endpoint removed", 30)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"pod-{uid[:13]}" not in netns


def test_daemonset_places_one_pod_per_node_and_host_network_sees_node_addresses(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(f"""
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: ds, namespace: {namespace}}}
spec:
  selector: {{matchLabels: {{app: ds}}}}
  template:
    metadata: {{labels: {{app: ds}}}}
    spec:
      hostNetwork: true
      containers:
      - name: pause
        image: {AGNHOST}
        args: [pause]
        env:
        - {{name: NODE_NAME, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
        - {{name: HOST_IP, valueFrom: {{fieldRef: {{fieldPath: status.hostIP}}}}}}
        - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
""")
    pods = ready_pods(cluster, namespace, "app=ds", 2)
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(
        n["metadata"]["name"] for n in cluster.get("nodes")["items"]
    )
    for p in pods:
        node = cluster.get("node", p["spec"]["nodeName"])
        node_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        assert p["status"]["podIP"] == node_ip == p["status"]["hostIP"]
        out = cluster.exec(f"{namespace}/{p['metadata']['name']}", "ip", "-o", "-4", "addr", "show", "eth0")
        assert f"inet {node_ip}/" in out.stdout, out.stdout + out.stderr
        env = cluster.exec(f"{namespace}/{p['metadata']['name']}", "sh", "-c", "echo $NODE_NAME $HOST_IP $POD_IP")
        assert env.stdout.split() == [p["spec"]["nodeName"], node_ip, node_ip]


def test_pod_has_resolv_conf_hostname_and_a_working_service_account_token(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "serviceaccount", "viewer", "-n", namespace)
    cluster.kubectl(
        "create",
        "rolebinding",
        "viewer",
        "--clusterrole=view",
        f"--serviceaccount={namespace}:viewer",
        "-n",
        namespace,
    )
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {namespace}}}
spec:
  serviceAccountName: viewer
  containers:
  - {{name: c, image: {AGNHOST}, args: [pause]}}
""")
    ready_pods(cluster, namespace, "", 1)
    pod = f"{namespace}/client"
    resolv = cluster.exec(pod, "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.96.0.10" in resolv and f"search {namespace}.svc.cluster.local" in resolv
    assert "ndots:5" in resolv
    assert cluster.exec(pod, "hostname").stdout.strip() == "client"
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert cluster.exec(pod, "cat", f"{sa}/namespace").stdout == namespace
    # the in-cluster client authenticates with the projected token against the real API server
    api = cluster.config("server")
    script = (
        "import ssl,urllib.request,json;"
        f"t=open('{sa}/token').read();c=ssl.create_default_context(cafile='{sa}/ca.crt');"
        f"r=urllib.request.Request('{api}/api/v1/namespaces/{namespace}/pods',"
        "headers={'Authorization':'Bearer '+t});"
        "print(len(json.load(urllib.request.urlopen(r,context=c,timeout=5))['items']))"
    )
    # the pod reaches the API at the node-level control-plane endpoint (no Service proxy is installed yet)
    out = cluster.exec(pod, "python3", "-c", script)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    whoami = cluster.exec(
        pod,
        "python3",
        "-c",
        f"import json,base64;t=open('{sa}/token').read().split('.')[1];"
        "print(json.loads(base64.urlsafe_b64decode(t+'=='))['sub'])",
    )
    assert whoami.stdout.strip() == f"system:serviceaccount:{namespace}:viewer"


def test_bad_pods_get_kubelet_reasons_and_disturb_nothing(cluster: Cluster, namespace: str) -> None:
    cluster.apply(netexec(namespace, replicas=2))
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: unknown-image, namespace: {namespace}}}
spec:
  containers: [{{name: c, image: "docker.io/library/nginx:1.27"}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: impossible-probe, namespace: {namespace}}}
spec:
  containers:
  - name: c
    image: {AGNHOST}
    args: [pause]
    readinessProbe: {{httpGet: {{path: /, port: 9999}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: port-taken, namespace: {namespace}}}
spec:
  containers:
  - {{name: a, image: {AGNHOST}, args: [netexec, --http-port=8080, --udp-port=-1]}}
  - {{name: b, image: {AGNHOST}, args: [netexec, --http-port=8080, --udp-port=-1]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: exits-at-once, namespace: {namespace}}}
spec:
  containers: [{{name: c, image: {AGNHOST}, command: [sh, -c, "exit 3"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: runs-once, namespace: {namespace}}}
spec:
  restartPolicy: Never
  containers: [{{name: c, image: {AGNHOST}, command: [sh, -c, "exit 0"]}}]
""")

    def status(name: str) -> dict:
        return cluster.get("pod", "-n", namespace, name)["status"]

    def waiting_reason(name: str, container: int = 0) -> str | None:
        cs = status(name).get("containerStatuses") or []
        return cs[container]["state"].get("waiting", {}).get("reason") if len(cs) > container else None

    wait_for(lambda: waiting_reason("unknown-image") == "ErrImagePull", "ErrImagePull", 60)
    msg = status("unknown-image")["containerStatuses"][0]["state"]["waiting"]["message"]
    assert "agnhost" in msg and "nginx" in msg
    events = cluster.get("events", "-n", namespace, "--field-selector", "involvedObject.name=unknown-image")["items"]
    assert any(e["reason"] == "Failed" and e["type"] == "Warning" for e in events)

    def crashed(name: str, container: int = 0) -> dict | None:
        cs = (status(name).get("containerStatuses") or [{}] * (container + 1))[container]
        return (
            cs
            if cs.get("restartCount", 0) >= 1 and cs["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
            else None
        )

    cs = wait_for(lambda: crashed("exits-at-once"), "CrashLoopBackOff", 60)
    assert cs["lastState"]["terminated"]["exitCode"] == 3 and cs["lastState"]["terminated"]["reason"] == "Error"
    taken = wait_for(lambda: crashed("port-taken", 0) or crashed("port-taken", 1), "one container crashing", 60)
    assert taken["lastState"]["terminated"]["exitCode"] != 0
    wait_for(lambda: status("runs-once")["phase"] == "Succeeded", "phase Succeeded", 60)
    assert status("runs-once")["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"

    probe = status("impossible-probe")
    assert probe["phase"] == "Running" and cluster.condition({"status": probe}, "Ready") == "False"
    wait_for(
        lambda: any(
            e["reason"] == "Unhealthy"
            for e in cluster.get("events", "-n", namespace, "--field-selector", "involvedObject.name=impossible-probe")[
                "items"
            ]
        ),
        "an Unhealthy event",
        30,
    )

    # and the good pods are untouched
    good = ready_pods(cluster, namespace, "app=netexec", 2)
    assert all(p["status"]["containerStatuses"][0]["restartCount"] == 0 for p in good)
    out = cluster.exec(
        f"{namespace}/{good[0]['metadata']['name']}",
        "python3",
        "-c",
        f"import urllib.request;print(urllib.request.urlopen('http://{good[1]['status']['podIP']}:8080/hostname',"
        "timeout=5).read().decode())",
    )
    assert out.stdout.strip() == good[1]["metadata"]["name"]
