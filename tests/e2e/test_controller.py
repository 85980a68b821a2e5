"""knet controller on the devcluster: the chart's controller templates (two replicas, Kopf peering, the
chart's RBAC) with real CoreDNS deployed like kind's, and LoadBalancer Services.

- DNSConfig `default` -> the `coredns` ConfigMap -> CoreDNS (the pinned binary as a pod, ConfigMap volume,
  `reload`) answers a hosts entry, a rewrite to a cluster name and a stub domain served by a knet dns pod;
  an invalid DNSConfig shows in its status, the ConfigMap keeps the previous Corefile and CoreDNS answers.
- LoadBalancerIPPools give addresses (lowest first, from the devcluster's LoadBalancer range), release them
  on delete and type change, report exhaustion as an Event and an overlapping pool in its condition.
- Only one replica acts (knet_controller_active); deleting it hands over to the other, which keeps every
  address where it was.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from operators.devcluster import upstream
from operators.devcluster.state import load_layout
from tests.e2e.harness import Cluster, knet, wait_for

ROOT = Path(__file__).resolve().parents[2]
NS = "knet-ctl"
CONTROLLERS = "app.kubernetes.io/component=controller"
CRDS = ("dnsconfigs.knet.io", "loadbalancerippools.knet.io", "clusterkopfpeerings.kopf.dev")
CRD_FILES = ("knet.io_dnsconfigs.yaml", "knet.io_loadbalancerippools.yaml", "kopf.dev_clusterkopfpeerings.yaml")
POOL_ANNOTATION = "knet.io/loadbalancer-pool"
# kind's Corefile (what CoreDNS runs before the controller writes the DNSConfig), minus its resolv.conf forward.
KIND_COREFILE = """.:53 {{
    errors
    health {{
       lameduck 5s
    }}
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus :9153
    forward . {upstream} {{
       max_concurrent 1000
    }}
    cache 30
    loop
    reload
    loadbalance
}}
"""


def helm_template(cluster: Cluster) -> str:
    """The chart's controller: Deployment (2 replicas), RBAC and ClusterKopfPeering, in namespace NS."""
    helm = str(upstream.bin_dir() / "helm")
    shown = [a for t in ("rbac", "deployment", "peering") for a in ("--show-only", f"templates/controller/{t}.yaml")]
    return subprocess.run([helm, "template", "knet", str(ROOT / "charts" / "knet"), "-n", NS,
                           "--set", f"controlPlaneEndpoint={cluster.config('server')}", "--set", "image.tag=dev",
                           "--set", "controller.replicas=2", *shown],
                          check=True, capture_output=True, text=True, timeout=60).stdout


def controller_pods(cluster: Cluster) -> list[str]:
    return [p["metadata"]["name"] for p in cluster.pods(NS, CONTROLLERS)
            if not p["metadata"].get("deletionTimestamp") and cluster.condition(p, "Ready") == "True"]


def active(cluster: Cluster, pod: str) -> float | None:
    """knet_controller_active of one replica (None: no answer yet)."""
    try:
        out = cluster.exec(f"{NS}/{pod}", "curl", "-s", "-m", "3", "http://127.0.0.1:9090/metrics").stdout
    except subprocess.TimeoutExpired:  # a busy machine: asked again by wait_for
        return None
    return next((float(line.split()[-1]) for line in out.splitlines() if line.startswith("knet_controller_active ")),
                None)


@pytest.fixture(scope="module")
def controller(cluster: Cluster) -> Iterator[Cluster]:
    had = {crd for crd in CRDS if cluster.kubectl("get", "crd", crd, check=False).startswith("NAME")}
    for crd, path in zip(CRDS, CRD_FILES, strict=True):
        if crd not in had:
            cluster.kubectl("apply", "-f", str(ROOT / "manifests" / "crds" / path))
    for crd in set(CRDS) - had:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")
    cluster.kubectl("create", "namespace", NS)
    wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", NS, check=False).startswith("NAME"),
             f"serviceaccount {NS}/default", 30)
    cluster.apply(helm_template(cluster))
    wait_for(lambda: len(controller_pods(cluster)) == 2, "two ready controller replicas", 120)
    yield cluster
    cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)
    cluster.kubectl("delete", "clusterrole,clusterrolebinding", "knet-controller", check=False)
    cluster.kubectl("delete", "role,rolebinding", "-n", "kube-system", "knet-controller-coredns", check=False)
    cluster.kubectl("delete", "clusterkopfpeering", "knet-controller", check=False)
    for crd in set(CRDS) - had:
        cluster.kubectl("delete", "crd", crd, "--wait=false", check=False)


# --- DNSConfig -> CoreDNS ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coredns(cluster: Cluster) -> Iterator[str]:
    """CoreDNS as kind deploys it (ServiceAccount, system:coredns, ConfigMap, Deployment); its pod's name."""
    layout = load_layout(cluster.name)
    dead = layout.external_ips[0]  # the external client: nothing listens on port 53 there
    api = cluster.config("server").removeprefix("https://")
    host, port = api.rsplit(":", 1)
    corefile = KIND_COREFILE.format(upstream=dead).replace("\n", "\n    ")
    cluster.apply(f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: coredns, namespace: kube-system}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "system:coredns"}}
rules:
- {{apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}}
- {{apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "system:coredns"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}}
subjects: [{{kind: ServiceAccount, name: coredns, namespace: kube-system}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: coredns, namespace: kube-system}}
data:
  Corefile: |
    {corefile}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: coredns, namespace: kube-system, labels: {{k8s-app: kube-dns}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{k8s-app: kube-dns}}}}
  template:
    metadata: {{labels: {{k8s-app: kube-dns}}}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: None
      dnsConfig: {{nameservers: ["{dead}"]}}
      containers:
      - name: coredns
        image: registry.k8s.io/coredns/coredns:v1.12.0
        args: [-conf, /etc/coredns/Corefile]
        env:  # no Service proxy runs in this cluster: the kubernetes plugin goes to the API server itself
        - {{name: KUBERNETES_SERVICE_HOST, value: "{host}"}}
        - {{name: KUBERNETES_SERVICE_PORT, value: "{port}"}}
        ports:
        - {{containerPort: 53, name: dns, protocol: UDP}}
        - {{containerPort: 53, name: dns-tcp, protocol: TCP}}
        - {{containerPort: 9153, name: metrics, protocol: TCP}}
        volumeMounts: [{{name: config-volume, mountPath: /etc/coredns, readOnly: true}}]
        livenessProbe: {{httpGet: {{path: /health, port: 8080}}, periodSeconds: 10}}
        readinessProbe: {{httpGet: {{path: /ready, port: 8181}}, periodSeconds: 1}}
      volumes:
      - name: config-volume
        configMap:
          name: coredns
          items: [{{key: Corefile, path: Corefile}}]
""")
    pod = wait_for(lambda: next((p["metadata"]["name"] for p in cluster.pods("kube-system", "k8s-app=kube-dns")
                                 if cluster.condition(p, "Ready") == "True"), None), "CoreDNS ready", 90)
    yield f"kube-system/{pod}"
    cluster.kubectl("delete", "-n", "kube-system", "deployment,configmap,serviceaccount", "coredns", check=False)
    cluster.kubectl("delete", "clusterrole,clusterrolebinding", "system:coredns", check=False)


@pytest.fixture(scope="module")
def stub_upstream(cluster: Cluster) -> Iterator[str]:
    """knet dns (offline, from a ConfigMap of objects) answering db.corp.test: the stub domain's server."""
    ns = "knet-ctl-upstream"
    cluster.kubectl("create", "namespace", ns)
    wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", ns, check=False).startswith("NAME"),
             f"serviceaccount {ns}/default", 30)
    cluster.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: objects, namespace: {ns}}}
data:
  objects.yaml: |
    apiVersion: knet.io/v1alpha1
    kind: DNSConfig
    metadata: {{name: default}}
    spec:
      hosts: [{{ip: 10.77.0.7, hostnames: [db.corp.test]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: upstream, namespace: {ns}}}
spec:
  containers:
  - name: dns
    image: localhost/knet:dev
    args: [dns, --objects, /objects/objects.yaml, --listen, "0.0.0.0:53"]
    volumeMounts: [{{name: objects, mountPath: /objects}}]
  volumes: [{{name: objects, configMap: {{name: objects}}}}]
""")
    ip = wait_for(lambda: cluster.get("pod", "-n", ns, "upstream")["status"].get("podIP"), "upstream pod IP", 60)
    wait_for(lambda: cluster.get("pod", "-n", ns, "upstream")["status"]["containerStatuses"][0]["ready"],
             "upstream running", 60)
    yield ip
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def dig(cluster: Cluster, pod: str, name: str, qtype: str = "A") -> list[str]:
    out = cluster.exec(pod, "dig", "+short", "+time=2", "+tries=1", "@127.0.0.1", name, qtype).stdout
    return [line for line in out.splitlines() if line and not line.startswith(";")]


def dnsconfig(spec: str) -> str:
    return f"apiVersion: knet.io/v1alpha1\nkind: DNSConfig\nmetadata: {{name: default}}\nspec:\n{spec}"


def corefile(cluster: Cluster) -> str:
    return cluster.get("configmap", "-n", "kube-system", "coredns")["data"]["Corefile"]


def test_dnsconfig_drives_coredns(controller: Cluster, coredns: str, stub_upstream: str) -> None:
    cluster = controller
    assert dig(cluster, coredns, "kubernetes.default.svc.cluster.local") == ["10.96.0.1"], "kind's Corefile works"
    cluster.apply(dnsconfig(f"""
  hosts: [{{ip: 10.1.2.3, hostnames: [web.example.test]}}]
  rewrites: [{{match: exact, from: db.example.test, to: kubernetes.default.svc.cluster.local}}]
  stubDomains: [{{domain: corp.test, servers: ["{stub_upstream}"]}}]
"""))
    wait_for(lambda: "web.example.test" in corefile(cluster), "the Corefile in the coredns ConfigMap", 30)
    obj = cluster.get("dnsconfig", "default")
    assert cluster.condition(obj, "Ready") == "True", obj.get("status")
    # CoreDNS's reload plugin checks every 30 s (+ up to 15 s jitter); the volume follows the ConfigMap in 5 s.
    wait_for(lambda: dig(cluster, coredns, "web.example.test") == ["10.1.2.3"], "CoreDNS answers the hosts entry", 90,
             interval=2)
    assert dig(cluster, coredns, "db.example.test")[-1:] == ["10.96.0.1"], "the rewrite to a cluster name"
    assert dig(cluster, coredns, "db.corp.test") == ["10.77.0.7"], "the stub domain's server"
    assert dig(cluster, coredns, "kubernetes.default.svc.cluster.local") == ["10.96.0.1"]

    good = corefile(cluster)
    cluster.apply(dnsconfig(f"""
  hosts: [{{ip: 10.1.2.4, hostnames: [web.example.test]}}]
  stubDomains: [{{domain: cluster.local, servers: ["{stub_upstream}"]}}]
"""))  # passes the schema; a stub domain for the cluster zone is refused by the controller

    def invalid() -> dict | None:
        obj = cluster.get("dnsconfig", "default")
        ready = next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})
        return obj["status"] if ready.get("reason") == "Invalid" else None

    status = wait_for(invalid, "the invalid DNSConfig reported in its status", 30)
    assert any("stubDomains" in p for p in status["problems"]), status
    assert corefile(cluster) == good, "an invalid DNSConfig is never written out"
    assert dig(cluster, coredns, "web.example.test") == ["10.1.2.3"], "CoreDNS keeps answering as before"
    cluster.kubectl("delete", "dnsconfig", "default")


# --- LoadBalancer addresses ----------------------------------------------------------------------


def lb_service(name: str, ns: str, pool: str = "", type_: str = "LoadBalancer") -> str:
    annotations = f"annotations: {{{POOL_ANNOTATION}: {pool}}}" if pool else "annotations: {}"
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}, {annotations}}}
spec: {{type: {type_}, selector: {{app: none}}, ports: [{{port: 80}}]}}
"""


def addresses(cluster: Cluster, ns: str, name: str) -> list[str]:
    svc = cluster.get("service", "-n", ns, name)
    return [i.get("ip") for i in (svc.get("status", {}).get("loadBalancer", {}).get("ingress") or [])]


def pool_status(cluster: Cluster, name: str) -> dict:
    return cluster.get("loadbalancerippool", name).get("status") or {}


@pytest.fixture
def lb_range(cluster: Cluster) -> Iterator[ipaddress.IPv4Network]:
    """The devcluster's LoadBalancer range; the pools made by a test are deleted after it."""
    yield ipaddress.ip_network(load_layout(cluster.name).lb_pool[0])
    cluster.kubectl("delete", "loadbalancerippool", "-l", "e2e=knet-ctl", check=False)


def pool(name: str, ranges: str) -> str:
    return f"""
apiVersion: knet.io/v1alpha1
kind: LoadBalancerIPPool
metadata: {{name: {name}, labels: {{e2e: knet-ctl}}}}
spec: {{ranges: {ranges}}}
"""


def test_pools_allocate_release_exhaust_and_overlap(controller: Cluster, namespace: str,
                                                    lb_range: ipaddress.IPv4Network) -> None:
    cluster = controller
    base = lb_range.network_address
    main, small = [str(base + i) for i in range(4)], [str(base + 8), str(base + 9)]
    cluster.apply(pool("ctl-main", f"[{{cidr: {base}/30}}]"))
    cluster.apply(pool("ctl-small", f"[{{start: {small[0]}, end: {small[1]}}}]"))
    wait_for(lambda: pool_status(cluster, "ctl-small").get("available") == 2, "the pools' status", 30)
    cluster.apply(pool("ctl-overlap", f"[{{cidr: {base + 2}/31}}]"))
    for name in ("a", "b"):
        cluster.apply(lb_service(name, namespace))
        wait_for(lambda n=name: addresses(cluster, namespace, n), f"an address for {name}", 30)
    assert addresses(cluster, namespace, "a") == [main[0]] and addresses(cluster, namespace, "b") == [main[1]]

    def overlap() -> dict | None:
        cond = next((c for c in pool_status(cluster, "ctl-overlap").get("conditions", [])), {})
        return cond if cond.get("reason") == "Overlap" else None

    cond = wait_for(overlap, "the overlapping pool's condition", 30)
    assert cond["status"] == "False" and "ctl-main" in cond["message"], cond
    wait_for(lambda: pool_status(cluster, "ctl-main").get("allocated") == 2, "ctl-main counts 2", 30)
    assert pool_status(cluster, "ctl-main")["available"] == 2

    for name in ("s1", "s2", "s3"):  # the named pool holds two addresses
        cluster.apply(lb_service(name, namespace, pool="ctl-small"))
        if name != "s3":
            wait_for(lambda n=name: addresses(cluster, namespace, n), f"an address for {name}", 30)

    def exhausted() -> list[dict]:
        events = cluster.get("events", "-n", namespace, "--field-selector", "involvedObject.name=s3")["items"]
        return [e for e in events if e["reason"] == "AllocationFailed"]

    event = wait_for(exhausted, "an AllocationFailed Event on s3", 30)[0]
    assert "exhausted" in event["message"] and "ctl-small" in event["message"], event
    assert addresses(cluster, namespace, "s3") == []
    cluster.kubectl("delete", "service", "-n", namespace, "s1")
    wait_for(lambda: addresses(cluster, namespace, "s3") == [small[0]], "s3 gets the address s1 released", 30)

    cluster.kubectl("delete", "service", "-n", namespace, "a")
    wait_for(lambda: pool_status(cluster, "ctl-main").get("allocated") == 1, "a's address released", 30)
    cluster.kubectl("patch", "service", "-n", namespace, "b", "-p", json.dumps({"spec": {"type": "ClusterIP"}}))
    wait_for(lambda: pool_status(cluster, "ctl-main").get("allocated") == 0, "b's address released (type change)",
             30)
    assert addresses(cluster, namespace, "b") == []
    cluster.apply(lb_service("c", namespace))
    wait_for(lambda: addresses(cluster, namespace, "c") == [main[0]], "c reuses the lowest released address", 30)


def test_one_replica_acts_and_the_other_takes_over(controller: Cluster, namespace: str,
                                                    lb_range: ipaddress.IPv4Network) -> None:
    cluster = controller
    base = lb_range.network_address
    cluster.apply(pool("ctl-failover", f"[{{cidr: {base + 16}/30}}]"))
    cluster.apply(lb_service("before", namespace))
    kept = wait_for(lambda: addresses(cluster, namespace, "before"), "an address before the failover", 30)

    def states() -> dict[str, float | None]:
        pods = controller_pods(cluster)
        return {pod: active(cluster, pod) for pod in pods} if len(pods) == 2 else {}

    now = wait_for(lambda: (s := states()) and sorted(s.values()) == [0.0, 1.0] and s, "one active replica", 60)
    leader = next(pod for pod, value in now.items() if value == 1.0)
    t0 = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", NS, leader, "--wait=false")
    cluster.apply(lb_service("after", namespace))
    wait_for(lambda: addresses(cluster, namespace, "after"), "an address from the replica that took over", 90)
    print(f"\nfailover: a new LoadBalancer Service got its address {time.monotonic() - t0:.1f}s after the "
          "active controller pod was deleted")
    assert addresses(cluster, namespace, "before") == kept, "the address stays where it was"
    after = wait_for(lambda: (s := states()) and leader not in s and sorted(s.values()) == [0.0, 1.0] and s,
                     "one active replica after the failover", 90)
    assert len(after) == 2


def test_no_call_of_the_controller_is_forbidden_by_its_chart_role(controller: Cluster) -> None:
    """Run last: every replica did all of the above under the chart's roles alone (the unit test
    test_chart_rbac_calls checks the other way: no grant that the code does not use)."""
    for pod in controller_pods(controller):
        lines = knet("devcluster", "logs", "--name", controller.name, f"{NS}/{pod}", check=False).stdout.splitlines()
        refused = [line for line in lines if 'system:serviceaccount:' in line and "cannot" in line]  # RBAC's words
        assert lines and not refused, (pod, refused[:3])
