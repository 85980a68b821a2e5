"""The Helm chart, offline: `helm lint --strict`, `helm template` of every documented variant, what the
rendered objects promise (agent, controller, DNS, ingress, least-privilege RBAC), the values schema
rejecting bad values with the field named, and manifests/install.yaml being current."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml
from chart_helpers import (
    CHART,
    INSTALL,
    NAMESPACE,
    RENDER_SCRIPT,
    ROOT,
    VARIANTS,
    docs,
    find,
    helm,
    one,
    template,
    tool,
    variant_args,
)

WORKLOADS = ("DaemonSet", "Deployment")


def render(variant: str | None = None, *args: str) -> list[dict[str, Any]]:
    return docs(template(*variant_args(variant), *args))


def container(obj: dict[str, Any]) -> dict[str, Any]:
    (c,) = obj["spec"]["template"]["spec"]["containers"]
    return c


def env(obj: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(obj)["env"]}


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render()


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v or "defaults")
def test_lint_strict(variant: str | None) -> None:
    proc = helm("lint", "--strict", str(CHART), *variant_args(variant), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v or "defaults")
def test_template_variant(variant: str | None) -> None:
    objs = render(variant)
    assert objs, "nothing rendered"
    names: set[tuple[str, str, str]] = set()
    for obj in objs:
        md = obj["metadata"]
        key = (obj["kind"], md.get("namespace", ""), md["name"])
        assert key not in names, f"{key} rendered twice"
        names.add(key)
        assert md["labels"]["app.kubernetes.io/part-of"] == "knet", key
        assert md["labels"]["app.kubernetes.io/managed-by"] == "Helm", key
        if obj["kind"] in ("Role", "RoleBinding") and md["name"].endswith("-coredns"):
            assert md["namespace"] == "kube-system"
        elif obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "IngressClass", "ClusterKopfPeering",
                                 "ClusterNetworkConfig", "CustomResourceDefinition", "ValidatingAdmissionPolicy",
                                 "ValidatingAdmissionPolicyBinding"):
            assert md["namespace"] == NAMESPACE, key
    accounts = {o["metadata"]["name"] for o in find(objs, "ServiceAccount")}
    pods = {o["metadata"]["name"]: o for o in objs if o["kind"] in WORKLOADS}
    for name, workload in pods.items():
        spec = workload["spec"]
        assert labels_match(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]), name
        if accounts:
            assert spec["template"]["spec"]["serviceAccountName"] in accounts, name
        c = container(workload)
        assert c["image"].rsplit("/", 1)[-1].startswith("knet:"), c["image"]
        assert c["args"][0] in ("agent", "controller", "dns", "ingress")
        for probe in ("livenessProbe", "readinessProbe"):
            port = c[probe]["httpGet"]["port"]
            assert port in {p["name"] for p in c["ports"]}, f"{name} {probe} port {port}"
        e = env(workload)
        assert e["KNET_API_SERVER"].startswith("https://")
        assert e["KUBERNETES_SERVICE_HOST"] and e["KUBERNETES_SERVICE_PORT"].isdigit()
    # every Service selects the pods of a rendered workload, through ports those pods name
    for svc in find(objs, "Service"):
        sel = svc["spec"]["selector"]
        targets = [w for w in pods.values() if labels_match(sel, w["spec"]["template"]["metadata"]["labels"])]
        assert targets, f"Service {svc['metadata']['name']} selects no workload"
        port_names = {p["name"] for w in targets for p in container(w)["ports"]}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{svc['metadata']['name']}: {port['targetPort']}"


# `helm install` that never contacts a cluster (so `lookup` finds nothing)
DRY_INSTALL = ("install", "knet", str(CHART), "--namespace", NAMESPACE, "--dry-run=client", "--kubeconfig",
               "/nonexistent")


def notes(*args: str) -> str:
    return helm(*DRY_INSTALL, *args).stdout.split("NOTES:", 1)[1]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v or "defaults")
def test_notes_render(variant: str | None) -> None:
    text = notes(*variant_args(variant))
    assert "knet 0.1.0 is installed in namespace knet-system" in text
    assert "kubectl get nodenetworkstatuses" in text


def test_agent_daemonset(default: list[dict[str, Any]]) -> None:
    ds = one(default, "DaemonSet", "knet-agent")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["tolerations"] == [{"operator": "Exists"}], "the agent tolerates every taint"
    c = container(ds)
    e = env(ds)
    assert e["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert e["KNET_API_SERVER"] == "https://knet-control-plane:6443"
    sc = c["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"healthz": 10256, "metrics": 10249}
    assert e["KNET_METRICS_BIND_ADDRESS"] == "127.0.0.1", "metrics on the node's loopback, as kube-proxy's"
    assert not find(default, "Service", "knet-agent-metrics"), "nothing to scrape from the network"
    assert "annotations" not in ds["spec"]["template"]["metadata"]
    opened = render(None, "--set", "agent.metricsBindAddress=0.0.0.0")
    assert one(opened, "Service", "knet-agent-metrics")
    assert env(one(opened, "DaemonSet"))["KNET_METRICS_BIND_ADDRESS"] == "0.0.0.0"
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert c[probe]["httpGet"] == {"path": path, "port": "healthz"}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/lib/modules"]["readOnly"] is True and "/run/xtables.lock" in mounts
    # on SIGTERM the agent reads its own DaemonSet (gone: uninstalled, remove the rules), and nothing else
    assert e["KNET_AGENT_DAEMONSET"] == f"{NAMESPACE}/knet-agent"
    role = one(default, "Role", "knet-agent")
    assert role["rules"] == [{"apiGroups": ["apps"], "resources": ["daemonsets"], "resourceNames": ["knet-agent"],
                              "verbs": ["get", "list", "watch"]}]
    assert one(default, "RoleBinding", "knet-agent")["subjects"][0]["name"] == "knet-agent"


def test_control_plane_endpoint_is_split_for_in_cluster_clients() -> None:
    for url, host, port in (("https://[fd00:172:30:1::10]:6443", "fd00:172:30:1::10", "6443"),
                            ("https://172.30.2.10", "172.30.2.10", "443"),
                            ("https://api.example.com:8443/", "api.example.com", "8443")):
        ds = one(render(None, "--set", f"controlPlaneEndpoint={url}"), "DaemonSet")
        e = env(ds)
        assert (e["KNET_API_SERVER"], e["KUBERNETES_SERVICE_HOST"], e["KUBERNETES_SERVICE_PORT"]) == (url, host, port)


def test_explicit_endpoint_wins_and_the_notes_say_so() -> None:
    url = "https://10.1.2.3:6443"
    assert env(one(render(None, "--set", f"controlPlaneEndpoint={url}"), "DaemonSet"))["KNET_API_SERVER"] == url
    assert f"API server at {url} (set by controlPlaneEndpoint)" in notes("--set", f"controlPlaneEndpoint={url}")


@pytest.mark.parametrize("command", [("template", "knet", str(CHART)), DRY_INSTALL], ids=["template", "dry-run"])
def test_auto_without_a_cluster_to_look_up_fails_saying_what_to_set(command: tuple[str, ...]) -> None:
    proc = helm(*command, check=False)  # the default, auto: nothing to look kube-public/cluster-info up in
    assert proc.returncode != 0 and "schema" not in proc.stderr
    assert "no ConfigMap kube-public/cluster-info" in proc.stderr
    assert "--set controlPlaneEndpoint=https://HOST:6443" in proc.stderr


def test_controller_peering(default: list[dict[str, Any]]) -> None:
    deploy = one(default, "Deployment", "knet-controller")
    assert deploy["spec"]["replicas"] == 2
    e = env(deploy)
    peering = one(default, "ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert e["KNET_PEERING"] == peering["metadata"]["name"] == "knet-controller"
    assert e["KNET_INGRESS_SERVICE"] == f"{NAMESPACE}/knet-ingress"
    assert e["KNET_COREDNS_CONFIGMAP"] == "kube-system/coredns"
    c = container(deploy)
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(c)
    standalone = render("standalone-values.yaml")
    assert not find(standalone, "ClusterKopfPeering")
    assert env(one(standalone, "Deployment", "knet-controller"))["KNET_PEERING"] == ""
    assert not find(standalone, "ServiceAccount") and not find(standalone, "ClusterRole")


def test_dns(default: list[dict[str, Any]]) -> None:
    deploy = one(default, "Deployment", "knet-dns")
    assert deploy["spec"]["replicas"] >= 2
    pdb = one(default, "PodDisruptionBudget", "knet-dns")
    assert labels_match(pdb["spec"]["selector"]["matchLabels"], deploy["spec"]["template"]["metadata"]["labels"])
    svc = one(default, "Service", "knet-dns")
    assert "clusterIP" not in svc["spec"] and "k8s-app" not in svc["metadata"]["labels"]
    assert {(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]} == {
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")}
    c = container(deploy)
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "ready"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"dns": 53, "dns-tcp": 53, "health": 8080, "ready": 8181, "metrics": 9153}

    compat = render("devcluster-values.yaml")
    kube_dns = one(compat, "Service", "kube-dns")
    assert kube_dns["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert kube_dns["spec"]["clusterIP"] == "10.96.0.10"
    assert not find(compat, "Service", "knet-dns")
    renamed = render(None, "--set", "dns.service.name=cluster-dns")
    assert one(renamed, "Service", "cluster-dns")
    assert not find(default, "DaemonSet", "knet-dns-node-local")


def test_dns_node_local_cache() -> None:
    objs = render("dns-node-local-values.yaml")
    ds = one(objs, "DaemonSet", "knet-dns-node-local")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "Default"
    assert pod["serviceAccountName"] == "knet-dns" and pod["tolerations"] == [{"operator": "Exists"}]
    c = container(ds)
    assert c["args"] == ["dns", "--node-local", "169.254.20.10", "--forward-to", "10.96.0.10", "--http",
                         "0.0.0.0:9254"]
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_BIND_SERVICE"]}
    forwarded = render("dns-node-local-values.yaml", "--set", "dns.nodeLocal.forwardTo=10.96.0.53:5353")
    assert container(one(forwarded, "DaemonSet", "knet-dns-node-local"))["args"][4] == "10.96.0.53:5353"
    # without the DNS Deployment it keeps the DNS ServiceAccount and its reads
    alone = render("dns-node-local-values.yaml", "--set", "dns.enabled=false")
    assert not find(alone, "Deployment", "knet-dns") and one(alone, "ClusterRole", "knet-dns")
    proc = helm("template", "knet", str(CHART), *variant_args(None), "--set", "dns.nodeLocal.enabled=true",
                check=False)
    assert proc.returncode != 0 and "dns.nodeLocal.forwardTo or dns.service.clusterIP" in proc.stderr


def test_ingress(default: list[dict[str, Any]]) -> None:
    cls = one(default, "IngressClass", "knet")
    assert cls["spec"]["controller"] == "knet.io/ingress-nginx"
    assert "annotations" not in cls["metadata"]
    assert one(default, "Service", "knet-ingress")["spec"]["type"] == "LoadBalancer"
    assert one(default, "Deployment", "knet-ingress")

    ds_variant = render("ingress-daemonset-values.yaml")
    cls = one(ds_variant, "IngressClass", "knet")
    assert cls["metadata"]["annotations"] == {"ingressclass.kubernetes.io/is-default-class": "true"}
    ds = one(ds_variant, "DaemonSet", "knet-ingress")
    assert not find(ds_variant, "Deployment", "knet-ingress")
    assert {p["name"]: p.get("hostPort") for p in container(ds)["ports"]}["http"] == 80
    svc = one(ds_variant, "Service", "knet-ingress")
    assert svc["spec"]["type"] == "NodePort" and svc["spec"]["externalTrafficPolicy"] == "Local"
    assert {p["name"]: p["nodePort"] for p in svc["spec"]["ports"]} == {"http": 30080, "https": 30443}


def test_components_switch_off() -> None:
    objs = render("agent-only-values.yaml")
    workloads = {(o["kind"], o["metadata"]["name"]) for o in objs if o["kind"] in WORKLOADS}
    assert workloads == {("DaemonSet", "knet-agent")}
    assert not find(objs, "IngressClass") and not find(objs, "PodDisruptionBudget")
    assert {o["metadata"]["name"] for o in find(objs, "ClusterRole")} == {"knet-agent"}
    cnc = one(objs, "ClusterNetworkConfig", "default")
    assert cnc["spec"]["proxy"]["mode"] == "iptables"


# What each component may change; everything else it may only read. Least privilege, written down.
WRITES = {
    "knet-agent": {"nodenetworkstatuses", "nodenetworkstatuses/status", "events"},
    "knet-controller": {"services/status", "dnsconfigs", "loadbalancerippools", "dnsconfigs/status",
                        "loadbalancerippools/status", "events", "clusterkopfpeerings"},
    "knet-dns": set(),
    "knet-ingress": {"events", "gatewayclasses/status", "gateways/status", "httproutes/status", "services",
                     "endpointslices"},
}
READS = {
    "knet-agent": {"services", "endpointslices", "nodes", "pods", "namespaces", "networkpolicies",
                   "clusternetworkconfigs", "nodenetworkstatuses"},
    "knet-controller": {"services", "namespaces", "dnsconfigs", "loadbalancerippools", "clusterkopfpeerings"},
    "knet-dns": {"services", "endpointslices", "pods", "namespaces", "dnsconfigs"},
    "knet-ingress": {"ingresses", "ingressclasses", "services", "endpointslices", "secrets", "namespaces",
                     "gatewayclasses", "gateways", "httproutes", "referencegrants"},
}
READ_VERBS = {"get", "list", "watch"}


def test_rbac_least_privilege(default: list[dict[str, Any]]) -> None:
    for name, writes in WRITES.items():
        role = one(default, "ClusterRole", name)
        granted: dict[str, set[str]] = {}
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
            for resource in rule["resources"]:
                granted.setdefault(resource, set()).update(rule["verbs"])
        written = {r for r, verbs in granted.items() if verbs - READ_VERBS}
        assert written == writes, f"{name} may write {sorted(written)}"
        missing = {r for r in READS[name] if not granted.get(r, set()) >= READ_VERBS and r != "events"}
        assert not missing, f"{name} cannot read {sorted(missing)}"
        if name in ("knet-agent", "knet-controller", "knet-dns"):
            assert "secrets" not in granted, f"{name} has no business with Secrets"
        binding = one(default, "ClusterRoleBinding", name)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
    # the controller's ConfigMaps: its own namespace, and CoreDNS's one ConfigMap by name
    own = one(default, "Role", "knet-controller")
    assert own["metadata"]["namespace"] == NAMESPACE and own["rules"][0]["resources"] == ["configmaps"]
    coredns = one(default, "Role", "knet-controller-coredns")
    assert coredns["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["coredns"],
                                 "verbs": ["get", "list", "watch", "update", "patch"]}]
    without = render("devcluster-values.yaml")
    assert not find(without, "Role", "knet-controller-coredns")


def test_service_monitors() -> None:
    objs = render("monitoring-values.yaml")
    monitors = find(objs, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {"knet-agent", "knet-controller", "knet-dns", "knet-ingress"}
    services = find(objs, "Service")
    for m in monitors:
        assert m["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        selected = [s for s in services if labels_match(m["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        assert len(selected) == 1, f"ServiceMonitor {m['metadata']['name']} selects {len(selected)} Services"
        assert "metrics" in {p["name"] for p in selected[0]["spec"]["ports"]}
    assert not find(render(), "ServiceMonitor")


# Wrong values and the field the error must name.
BAD_VALUES = [
    (["--set", "agent.enabled=maybe"], "/agent/enabled"),
    (["--set", "dns.replicas=1"], "/dns/replicas"),
    (["--set", "controller.replicas=two"], "/controller/replicas"),
    (["--set", "ingress.kind=StatefulSet"], "/ingress/kind"),
    (["--set", "ingress.service.type=ClusterIP"], "/ingress/service/type"),
    (["--set", "ingress.service.nodePorts.http=80"], "/ingress/service/nodePorts/http"),
    (["--set", "agent.metricsPort=70000"], "/agent/metricsPort"),
    (["--set", "controlPlaneEndpoint=http://10.0.0.1:6443"], "/controlPlaneEndpoint"),
    (["--set", "controlPlaneEndpoint="], "/controlPlaneEndpoint"),
    (["--set", "controlPlaneEndpoint=automatic"], "/controlPlaneEndpoint"),
    (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
    (["--set", "logLevel=verbose"], "/logLevel"),
    (["--set", "agent.unknownKey=1"], "unknownKey"),
    (["--set-json", 'agent.tolerations=[{"operator":"Exists","effect":"Sometimes"}]'], "/agent/tolerations/0/effect"),
    (["--set-json", "dns.service.kubeDNSCompatible=\"yes\""], "/dns/service/kubeDNSCompatible"),
    (["--set", "controller.peering.enabled=false"], "/controller/replicas"),
    (["--set", "metrics.serviceMonitor.enabled=true,metrics.services=false"], "/metrics/services"),
    (["--set", "dns.nodeLocal.address=10.0.0.1"], "/dns/nodeLocal/address"),
    (["--set", "dns.nodeLocal.forwardTo=kube-dns"], "/dns/nodeLocal/forwardTo"),
]


@pytest.mark.parametrize(("args", "field"), BAD_VALUES, ids=[a[-1] for a, _ in BAD_VALUES])
def test_schema_rejects(args: list[str], field: str) -> None:
    proc = helm("template", "knet", str(CHART), "-n", NAMESPACE, *args, check=False)
    assert proc.returncode != 0, f"{args} was accepted"
    assert "schema" in proc.stderr and field in proc.stderr, proc.stderr


def test_required_endpoint_without_the_schema() -> None:
    proc = helm("template", "knet", str(CHART), "--skip-schema-validation", "--set", "controlPlaneEndpoint=",
                check=False)
    assert proc.returncode != 0 and "controlPlaneEndpoint is required" in proc.stderr


def test_values_are_documented() -> None:
    """Every value the chart defines has a comment in values.yaml, and the schema knows every key.

    A chart-defined value is one the schema spells out in `properties`; keys inside Kubernetes-typed values
    (resources, tolerations, security contexts) are documented by the value that holds them.
    """
    schema = json.loads((CHART / "values.schema.json").read_text())
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    checked = 0
    for i, line in enumerate(lines):
        m = re.match(r"^( *)([A-Za-z][A-Za-z0-9]*):", line)
        if not m:
            continue
        indent = len(m.group(1))
        stack = [(d, k) for d, k in stack if d < indent] + [(indent, m.group(2))]
        node: dict[str, Any] | None = schema
        for _, key in stack:
            node = (node or {}).get("properties", {}).get(key)
        if node is None or "properties" in node:
            continue  # not the chart's own key, or a section documented by its children
        above = lines[i - 1].strip()
        assert above.startswith("#"), f"values.yaml:{i + 1}: {'.'.join(k for _, k in stack)} has no comment"
        checked += 1
    assert checked > 60
    assert schema["additionalProperties"] is False
    for section in ("agent", "controller", "dns", "ingress", "image", "metrics", "rbac"):
        assert schema["properties"][section]["additionalProperties"] is False, section


def test_install_yaml_is_current() -> None:
    tool("helm")
    proc = subprocess.run([str(RENDER_SCRIPT), "--print"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == INSTALL.read_text(), (
        "manifests/install.yaml is out of date with charts/knet: run hack/render-install.sh"
    )
    objs = docs(proc.stdout)
    assert objs[0] == {"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "knet"}}}
    crds = [o["metadata"]["name"] for o in find(objs, "CustomResourceDefinition")]
    assert len([c for c in crds if not c.endswith(".gateway.networking.k8s.io")]) == 5
    assert {"gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io"} <= set(crds)
    assert docs(template(*variant_args(None), crds=True)) == objs[1:]


def restricted_violations(workload: dict[str, Any]) -> list[str]:
    """What keeps a pod template from the `restricted` Pod Security level (the checks its chart can fail)."""
    pod = workload["spec"]["template"]["spec"]
    psc = pod.get("securityContext") or {}
    found = [f"host {k}" for k in ("hostNetwork", "hostPID", "hostIPC") if pod.get(k)]
    found += [f"hostPath {v['name']}" for v in pod.get("volumes") or () if "hostPath" in v]
    for c in pod["containers"]:
        sc = c.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        found += [f"{c['name']}: {what}" for what, bad in (
            ("may run as root", not sc.get("runAsNonRoot", psc.get("runAsNonRoot"))),
            ("privilege escalation", sc.get("allowPrivilegeEscalation") is not False or sc.get("privileged")),
            ("capabilities kept", "ALL" not in caps.get("drop", ()) or set(caps.get("add", ())) - {"NET_BIND_SERVICE"}),
            ("no seccomp profile", (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
             not in ("RuntimeDefault", "Localhost")),
            ("host port", any(p.get("hostPort") for p in c.get("ports") or ()))) if bad]
    return found


def test_pod_security_levels(default: list[dict[str, Any]]) -> None:
    """charts/knet/README.md, "Pod Security": the Deployments meet `restricted`; the agent cannot."""
    for name in ("knet-controller", "knet-dns", "knet-ingress"):
        assert restricted_violations(one(default, "Deployment", name)) == [], name
    assert "host hostNetwork" in restricted_violations(one(default, "DaemonSet", "knet-agent"))


def test_gateway_api_crds_are_the_pinned_upstream_files_and_can_be_left_out() -> None:
    pinned = sorted((CHART / "files" / "gateway-api").glob("*.yaml"))
    rendered = {(o["kind"], o["metadata"]["name"]) for o in docs(template(*variant_args(None)))
                if o["metadata"]["name"].endswith(".gateway.networking.k8s.io")}
    upstream = {(d["kind"], d["metadata"]["name"]) for p in pinned for d in yaml.safe_load_all(p.read_text()) if d}
    assert rendered == upstream and ("CustomResourceDefinition", "httproutes.gateway.networking.k8s.io") in rendered
    off = docs(template(*variant_args(None), "--set", "gatewayAPI.installCRDs=false"))
    assert not [o for o in off if o["metadata"]["name"].endswith(".gateway.networking.k8s.io")]


def _verbs(objs: list[dict[str, Any]], role: str, resource: str) -> set[str]:
    return {v for rule in one(objs, "ClusterRole", role)["rules"] if resource in rule["resources"]
            for v in rule["verbs"]}


def test_gateway_services_are_written_only_with_gateway_ports(default: list[dict[str, Any]]) -> None:
    """Each Gateway's own Service and EndpointSlices: the ingress writes them with exactly the calls the chart
    grants (gateway_services.py), and without `ingress.gatewayPorts` it neither can nor is told to."""
    from operators.ingress.gateway_services import METHODS

    calls = {{"POST": "create", "PATCH": "patch", "DELETE": "delete"}[m] for m in METHODS.values()}
    for resource in ("services", "endpointslices"):
        assert _verbs(default, "knet-ingress", resource) == READ_VERBS | calls
    assert env(one(default, "Deployment", "knet-ingress"))["KNET_GATEWAY_PORTS"] == "20000-29999"
    shared = render(None, "--set", "ingress.gatewayPorts=")
    for resource in ("services", "endpointslices"):
        assert _verbs(shared, "knet-ingress", resource) == READ_VERBS
    assert "KNET_GATEWAY_PORTS" not in env(one(shared, "Deployment", "knet-ingress"))
