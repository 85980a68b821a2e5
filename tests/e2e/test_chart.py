"""The chart and the CRDs against a real API server (the session devcluster).

- every documented values variant (`helm template`, CRDs included) passes `kubectl apply --dry-run=server`,
  and so does manifests/install.yaml;
- the CRDs, installed for real, accept each example and show it in `kubectl get` with its printer columns;
- objects that break the schema are rejected with a message naming the field, and the LoadBalancerIPPool
  range-order rule (CEL) agrees with Python's ipaddress on random ranges of both families.

Only what this module creates is removed at its end: the CRDs (unless they were there before), the example
objects, the demo namespace and knet-system (unless they existed).
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from operators.devcluster import upstream
from tests.e2e.harness import Cluster, wait_for

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "knet"
CRDS = ROOT / "manifests" / "crds"
EXAMPLES = ROOT / "manifests" / "examples"
NAMESPACE = "knet-system"
VARIANTS = [None, *sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))]
# the API server that `controlPlaneEndpoint: auto` would look up, for `helm template` (as tests/unit/chart renders)
OFFLINE_VALUES = ROOT / "tests" / "unit" / "chart" / "offline-values.yaml"
# The monitoring variant renders ServiceMonitors; where prometheus-operator is absent, this stand-in CRD
# (any object accepted) lets the rest of that variant be checked by the API server.
SERVICE_MONITOR_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def crd_objects() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml"))]


def exists(cluster: Cluster, *what: str) -> bool:
    return "NotFound" not in cluster.kubectl("get", *what, "-o", "name", check=False)


def helm_template(variant: str | None) -> str:
    args = ["-f", str(OFFLINE_VALUES), *(["-f", str(CHART / "ci" / variant)] if variant else [])]
    proc = subprocess.run([str(upstream.bin_dir() / "helm"), "template", "knet", str(CHART), "--namespace",
                           NAMESPACE, "--include-crds", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def dry_run(cluster: Cluster, manifest: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cluster.kubectl_bin, f"--kubeconfig={cluster.kubeconfig}", "apply", "--dry-run=server",
                           "-f", "-"], input=manifest, capture_output=True, text=True, timeout=120)


def create(cluster: Cluster, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cluster.kubectl_bin, f"--kubeconfig={cluster.kubeconfig}", "create", "-f", "-"],
                          input=json.dumps(obj), capture_output=True, text=True, timeout=60)


class Installed:
    """What this module put into the cluster, to take out again."""

    def __init__(self) -> None:
        self.crds: list[str] = []
        self.namespaces: list[str] = []
        self.objects: list[tuple[str, str]] = []  # (resource, name) of cluster-scoped objects

    def remember(self, resource: str, name: str) -> None:
        if (resource, name) not in self.objects:
            self.objects.append((resource, name))


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Iterator[Installed]:
    """The CRDs installed for real (and knet-system present), removed at the end of the module."""
    done = Installed()
    for crd in crd_objects():
        if not exists(cluster, "crd", crd["metadata"]["name"]):
            done.crds.append(crd["metadata"]["name"])
    if not exists(cluster, "crd", "servicemonitors.monitoring.coreos.com"):
        cluster.apply(SERVICE_MONITOR_CRD)
        done.crds.append("servicemonitors.monitoring.coreos.com")
    cluster.kubectl("apply", "-f", str(CRDS))
    names = [c["metadata"]["name"] for c in crd_objects()] + ["servicemonitors.monitoring.coreos.com"]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names))
    if not exists(cluster, "namespace", NAMESPACE):
        cluster.kubectl("create", "namespace", NAMESPACE)
        done.namespaces.append(NAMESPACE)
    yield done
    for resource, name in reversed(done.objects):
        cluster.kubectl("delete", resource, name, "--ignore-not-found", "--wait=false", check=False)
    for ns in done.namespaces:
        cluster.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)
    if done.crds:
        cluster.kubectl("delete", "crd", *done.crds, "--ignore-not-found", "--timeout=60s", check=False)


def test_crds_served(cluster: Cluster, installed: Installed) -> None:
    out = cluster.kubectl("api-resources", "--api-group=knet.io", "-o", "wide")
    for plural, short in (("clusternetworkconfigs", "cnc"), ("dnsconfigs", "dnsc"), ("loadbalancerippools", "lbpool"),
                          ("nodenetworkstatuses", "nns")):
        line = next((x for x in out.splitlines() if x.startswith(plural + " ")), "")
        assert short in line.split() and "false" in line.split(), f"{plural} not served cluster-scoped: {line!r}"
    assert exists(cluster, "crd", "clusterkopfpeerings.kopf.dev")


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v or "defaults")
def test_variant_applies_server_side(cluster: Cluster, installed: Installed, variant: str | None) -> None:
    manifest = helm_template(variant)
    objects = [d for d in yaml.safe_load_all(manifest) if d]
    proc = dry_run(cluster, manifest)
    assert proc.returncode == 0, f"{variant or 'defaults'}:\n{proc.stderr}"
    accepted = [line for line in proc.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(objects), proc.stdout
    assert "Warning" not in proc.stderr, proc.stderr


def test_install_yaml_applies_server_side(cluster: Cluster, installed: Installed) -> None:
    proc = dry_run(cluster, (ROOT / "manifests" / "install.yaml").read_text())
    assert proc.returncode == 0, proc.stderr


def printer_columns(plural: str) -> list[str]:
    (crd,) = [c for c in crd_objects() if c["spec"]["names"]["plural"] == plural]
    (version,) = crd["spec"]["versions"]
    return [c["name"].upper() for c in version["additionalPrinterColumns"] if not c.get("priority")]


def table(cluster: Cluster, *args: str) -> dict[str, str]:
    """`kubectl get ...` of one object as {column: value} (values of columns split on runs of spaces)."""
    header, row, *_ = cluster.kubectl("get", *args).splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    cells = [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return dict(zip(names, cells, strict=True))


def contains(big: Any, small: Any) -> bool:
    """Whether `small` is `big` with some mapping keys left out (defaults the API server filled in)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and contains(big[k], v) for k, v in small.items())
    return big == small


EXAMPLE_FILES = {
    "clusternetworkconfigs": "clusternetworkconfig.yaml",
    "dnsconfigs": "dnsconfig.yaml",
    "loadbalancerippools": "loadbalancerippool.yaml",
    "nodenetworkstatuses": "nodenetworkstatus.yaml",
}
# Status as the controller or agent writes it, so that the status columns show values too.
STATUS = {
    "clusternetworkconfigs": {"nodesSynced": "2/2"},
    "dnsconfigs": {"problems": []},
    "loadbalancerippools": {"allocated": 3, "available": 61},
}
READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "Applied", "message": "ok",
                         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}


@pytest.mark.parametrize("plural", sorted(EXAMPLE_FILES))
def test_example_accepted_and_listed(cluster: Cluster, installed: Installed, plural: str) -> None:
    path = EXAMPLES / EXAMPLE_FILES[plural]
    (obj,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    name = obj["metadata"]["name"]
    if exists(cluster, plural, name):
        pytest.skip(f"{plural}/{name} exists already in this cluster; not overwriting it")
    installed.remember(plural, name)
    cluster.kubectl("apply", "-f", str(path))
    if plural == "nodenetworkstatuses":  # the file carries the status an agent writes
        cluster.kubectl("patch", plural, name, "--subresource=status", "--type=merge", "--patch-file", str(path))
    else:
        patch = {"status": {**STATUS[plural], **READY}}
        cluster.kubectl("patch", plural, name, "--subresource=status", "--type=merge", "-p", json.dumps(patch))
    row = table(cluster, plural, name)
    assert list(row) == ["NAME", *printer_columns(plural)], row
    assert row["NAME"] == name and row["READY"] == "True", row
    expected = {
        "clusternetworkconfigs": {"MODE": "nftables", "DOMAIN": "cluster.local", "STRICT": "false",
                                  "NODES-SYNCED": "2/2"},
        "dnsconfigs": {"DOMAIN": "cluster.local", "POD-RECORDS": "insecure", "TTL": "5"},
        "loadbalancerippools": {"CIDRS": "172.30.1.128/26", "START": "fd00:172:30:1::1:0", "ALLOCATED": "3",
                                "AVAILABLE": "61"},
        "nodenetworkstatuses": {"MODE": "nftables", "SERVICES": "12", "ENDPOINTS": "30", "POLICIES": "3",
                                "RULES": "245", "DURATION": "12.5ms"},
    }[plural]
    assert {k: row[k] for k in expected} == expected
    # the stored spec is what the file says, plus the schema's defaults
    assert contains(cluster.get(plural, name)["spec"], obj.get("spec") or {})
    assert name in cluster.kubectl("get", "knet")


def test_demo_application_accepted(cluster: Cluster, installed: Installed) -> None:
    path = EXAMPLES / "demo.yaml"
    if exists(cluster, "namespace", "demo"):
        pytest.skip("namespace demo exists already in this cluster")
    installed.namespaces.append("demo")
    if not exists(cluster, "dnsconfigs", "default"):
        installed.remember("dnsconfigs", "default")
    cluster.kubectl("apply", "-f", str(path))
    svc = cluster.get("service", "web", "-n", "demo")
    assert svc["spec"]["type"] == "NodePort" and all(p.get("nodePort") for p in svc["spec"]["ports"])
    assert cluster.get("ingress", "web", "-n", "demo")["spec"]["ingressClassName"] == "knet"
    assert cluster.get("networkpolicy", "web", "-n", "demo")["spec"]["podSelector"] == {"matchLabels": {"app": "web"}}
    rewrites = cluster.get("dnsconfig", "default")["spec"]["rewrites"]
    assert rewrites == [{"match": "exact", "from": "web.demo.example", "to": "web.demo.svc.cluster.local"}]
    wait_for(lambda: cluster.get("deployment", "web", "-n", "demo").get("status", {}).get("readyReplicas") == 2,
             "the demo's agnhost netexec pods ready", 90)


CNC = {"apiVersion": "knet.io/v1alpha1", "kind": "ClusterNetworkConfig", "metadata": {"name": "default"}}
DNS = {"apiVersion": "knet.io/v1alpha1", "kind": "DNSConfig", "metadata": {"name": "rejected"}}
POOL = {"apiVersion": "knet.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": "rejected"}}
# (object, the field the error names, words of the message)
INVALID = [
    ({**CNC, "spec": {"proxy": {"mode": "ipvs"}}}, "spec.proxy.mode", 'Unsupported value: "ipvs"'),
    ({**CNC, "spec": {"proxy": {"syncPeriod": "30s", "minSyncPeriod": "1m"}}}, "spec.proxy.minSyncPeriod",
     "must not be longer than syncPeriod"),
    ({**CNC, "metadata": {"name": "cluster"}, "spec": {}}, "metadata.name", "must be 'default'"),
    ({**CNC, "spec": {"proxy": {"masqueradeBit": 15}}}, "spec.proxy.dropBit", "must differ"),
    ({**CNC, "spec": {"clusterCIDRs": ["10.96.0.0/12"], "serviceCIDRs": ["10.96.0.0/16"]}}, "spec.serviceCIDRs",
     "must not overlap"),
    ({**CNC, "spec": {"proxy": {"nodePortAddresses": ["127.0.0.0/8"]}}}, "spec.proxy.nodePortAddresses[0]",
     "loopback"),
    ({**CNC, "spec": {"proxy": {"syncPeriod": "100ms"}}}, "spec.proxy.syncPeriod", "between 1s and 24h"),
    ({**CNC, "spec": {"networkPolicy": {"strictMode": "yes"}}}, "spec.networkPolicy.strictMode", "boolean"),
    ({**POOL, "spec": {"ranges": [{"start": "172.30.1.200", "end": "172.30.1.100"}]}}, "spec.ranges[0].start",
     "must not be greater than `end`"),
    ({**POOL, "spec": {"ranges": [{"cidr": "10.0.0.0/24"}, {"start": "fd00::1:0", "end": "fd00::ff"}]}},
     "spec.ranges[1].start", "must not be greater than `end`"),
    ({**POOL, "spec": {"ranges": [{"start": "10.0.0.1", "end": "fd00::1"}]}}, "spec.ranges[0].end",
     "same address family"),
    ({**POOL, "spec": {"ranges": [{"cidr": "10.0.0.0/24", "start": "10.0.0.1", "end": "10.0.0.2"}]}},
     "spec.ranges[0]", "either `cidr` or `start` and `end`"),
    ({**POOL, "spec": {"ranges": [{"cidr": "10.0.0.0/33"}]}}, "spec.ranges[0].cidr", "must be a CIDR"),
    ({**POOL, "spec": {"ranges": []}}, "spec.ranges", "should have at least 1 items"),
    ({**POOL, "spec": {"ranges": [{"cidr": "10.0.0.0/24"}],
                       "serviceSelector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}}},
     "spec.serviceSelector.matchExpressions[0].values", "need values"),
    ({**DNS, "spec": {"podRecords": "sometimes"}}, "spec.podRecords", 'Unsupported value: "sometimes"'),
    ({**DNS, "spec": {"ttl": 99999}}, "spec.ttl", "less than or equal to 3600"),
    ({**DNS, "spec": {"upstream": {"servers": ["dns.google"]}}}, "spec.upstream.servers[0]", "no names"),
    ({**DNS, "spec": {"upstream": {"servers": ["10.0.0.1:70000"]}}}, "spec.upstream.servers[0]", "1-65535"),
    ({**DNS, "spec": {"rewrites": [{"match": "exact", "from": "a.example", "to": "{1}.example"}]}},
     "spec.rewrites[0].to", "only with match regex"),
    ({**DNS, "spec": {"stubDomains": [{"domain": "corp.example", "servers": ["10.0.0.53"]},
                                      {"domain": "corp.example", "servers": ["10.0.0.54"]}]}},
     "spec.stubDomains[1]", "Duplicate value"),
    ({**DNS, "spec": {"acl": [{"action": "deny", "sources": ["everyone"]}]}}, "spec.acl[0].sources[0]",
     "CIDR or an IP address"),
]


@pytest.mark.parametrize(("obj", "field", "words"), INVALID, ids=[f"{o['kind']}:{f}" for o, f, _ in INVALID])
def test_invalid_rejected(cluster: Cluster, installed: Installed, obj: dict[str, Any], field: str, words: str) -> None:
    proc = create(cluster, obj)
    if proc.returncode == 0:
        plural = {"ClusterNetworkConfig": "clusternetworkconfigs", "DNSConfig": "dnsconfigs",
                  "LoadBalancerIPPool": "loadbalancerippools"}[obj["kind"]]
        installed.remember(plural, obj["metadata"]["name"])
        pytest.fail(f"accepted: {json.dumps(obj['spec'])}")
    assert "is invalid" in proc.stderr, proc.stderr
    assert f"{field}:" in proc.stderr and words in proc.stderr, proc.stderr


def test_node_status_validated(cluster: Cluster, installed: Installed) -> None:
    name = "knet-e2e-chart-node"
    obj = {"apiVersion": "knet.io/v1alpha1", "kind": "NodeNetworkStatus", "metadata": {"name": name}, "spec": {}}
    installed.remember("nodenetworkstatuses", name)
    assert create(cluster, obj).returncode == 0
    good = {"status": {"proxyMode": "iptables", "lastSyncTime": "2026-01-01T00:00:10Z",
                       "lastFullSyncTime": "2026-01-01T00:00:00Z", "lastSyncDuration": "3ms"}}
    cluster.kubectl("patch", "nns", name, "--subresource=status", "--type=merge", "-p", json.dumps(good))
    for status, field, words in (
        ({"lastFullSyncTime": "2026-01-01T00:01:00Z"}, "status.lastSyncTime", "never before lastFullSyncTime"),
        ({"proxyMode": "ipvs"}, "status.proxyMode", "Unsupported value"),
        ({"counts": {"rules": -1}}, "status.counts.rules", "greater than or equal to 0"),
        ({"lastSyncDuration": "fast"}, "status.lastSyncDuration", "should match"),
    ):
        out = cluster.kubectl("patch", "nns", name, "--subresource=status", "--type=merge", "-p",
                              json.dumps({"status": status}), check=False)
        assert f"{field}:" in out and words in out, out
    assert table(cluster, "nns", name)["MODE"] == "iptables"


def test_range_order_rule_agrees_with_python(cluster: Cluster, installed: Installed) -> None:
    """The CEL rule that orders start and end, on random ranges of both families (near-equal ones included)."""
    rnd = random.Random(8)

    def address(family: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        if family == 4:
            return ipaddress.IPv4Address(rnd.getrandbits(32))
        return ipaddress.IPv6Address(rnd.getrandbits(128) >> rnd.choice([0, 0, 64, 100, 120]))

    for _ in range(4):
        ranges, wrong = [], set()
        for i in range(64):
            family = rnd.choice([4, 6])
            start = address(family)
            end = address(family) if rnd.random() < 0.6 else type(start)(max(0, int(start) + rnd.choice([-2, 0, 1])))
            ranges.append({"start": str(start).upper() if rnd.random() < 0.2 else str(start), "end": str(end)})
            if start > end:
                wrong.add(i)
        pool = {**POOL, "metadata": {"name": "order"}, "spec": {"ranges": ranges}}
        proc = dry_run(cluster, json.dumps(pool))
        rejected = {int(i) for i in re.findall(r"spec\.ranges\[(\d+)\]\.start", proc.stderr)}
        assert rejected == wrong, f"CEL and Python disagree on {[ranges[i] for i in sorted(rejected ^ wrong)]}"
