"""The CRDs and examples, offline: one source, the structure every knet CRD must have, and agreement with the
parsers of the pure cores (operators.dns.config, operators.proxy.model) that read these objects."""

from __future__ import annotations

import re
from typing import Any

import pytest
from chart_helpers import CHART_CRDS, CRDS, EXAMPLES, KNET_KINDS, RENDER_SCRIPT, load

from operators.dns import config as dns_config
from operators.proxy import model as proxy_model

CRD_FILES = sorted(p.name for p in CRDS.glob("*.yaml"))


def crd(kind: str) -> dict[str, Any]:
    for name in CRD_FILES:
        (obj,) = load(CRDS / name)
        if obj["spec"]["names"]["kind"] == kind:
            return obj
    raise AssertionError(f"no CRD for {kind} in {CRDS}")


def schema(kind: str) -> dict[str, Any]:
    (version,) = crd(kind)["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def rules(node: Any) -> list[dict[str, Any]]:
    """Every x-kubernetes-validations rule anywhere below a schema node."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found += node.get("x-kubernetes-validations", [])
        for value in node.values():
            found += rules(value)
    elif isinstance(node, list):
        for value in node:
            found += rules(value)
    return found


def at(node: dict[str, Any], *path: str) -> dict[str, Any]:
    for key in path:
        node = node["items"] if key == "[]" else node["properties"][key]
    return node


def test_chart_crds_are_copies_of_manifests_crds() -> None:
    chart = sorted(p.name for p in CHART_CRDS.glob("*.yaml"))
    assert chart == CRD_FILES, f"charts/knet/crds differs from manifests/crds: run hack/{RENDER_SCRIPT.name}"
    for name in CRD_FILES:
        assert (CHART_CRDS / name).read_bytes() == (CRDS / name).read_bytes(), (
            f"charts/knet/crds/{name} is stale: run hack/render-install.sh"
        )


def test_every_kind_has_a_crd_and_nothing_else_is_there() -> None:
    kinds = sorted(load(CRDS / n)[0]["spec"]["names"]["kind"] for n in CRD_FILES)
    assert kinds == sorted([*KNET_KINDS, "ClusterKopfPeering"])


@pytest.mark.parametrize("kind", KNET_KINDS)
def test_knet_crd_structure(kind: str) -> None:
    obj = crd(kind)
    spec = obj["spec"]
    assert obj["metadata"]["name"] == f"{spec['names']['plural']}.knet.io"
    assert spec["group"] == "knet.io"
    assert spec["scope"] == "Cluster"
    assert "knet" in spec["names"]["categories"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert "Age" in columns and "Ready" in columns, "every kind shows its Ready condition and age"
    top = version["schema"]["openAPIV3Schema"]
    assert top["type"] == "object"
    assert {"spec", "status"} <= set(top["properties"])
    conditions = at(top, "status", "conditions")
    assert conditions["x-kubernetes-list-type"] == "map" and conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert at(conditions, "[]", "status")["enum"] == ["True", "False", "Unknown"]


@pytest.mark.parametrize("kind", KNET_KINDS)
def test_printer_columns_point_at_schema_fields(kind: str) -> None:
    (version,) = crd(kind)["spec"]["versions"]
    top = version["schema"]["openAPIV3Schema"]
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"]
        if path == ".metadata.creationTimestamp":
            continue
        node = top
        # .a.b[*].c and .a.b[?(@.type=="Ready")].c: every named step must be a property of the schema
        for step in re.findall(r"\.([A-Za-z]+)(\[[^\]]*\])?", path):
            node = node["properties"][step[0]]
            if step[1]:
                assert node["type"] == "array", f"{kind} column {column['name']}: {step[0]} is not a list"
                node = node["items"]
        expected = {"integer": "integer", "boolean": "boolean", "string": "string", "array": "string"}
        assert column["type"] in ("string", "date", expected[node["type"]]), f"{kind} column {column['name']}"


@pytest.mark.parametrize("kind", KNET_KINDS)
def test_every_kind_validates_with_cel(kind: str) -> None:
    top = schema(kind)
    found = rules(top)
    assert found, f"{kind} has no x-kubernetes-validations rule"
    for rule in found:
        assert rule.get("message"), f"{kind}: rule without a message: {rule['rule'][:60]}"


def test_cluster_network_config_rules() -> None:
    top = schema("ClusterNetworkConfig")
    (name_rule,) = at(top, "metadata", "name")["x-kubernetes-validations"]
    assert name_rule["rule"] == "self == 'default'"
    proxy = at(top, "spec", "proxy")
    assert proxy["properties"]["mode"]["enum"] == list(proxy_model.MODES)
    assert proxy["properties"]["detectLocalMode"]["enum"] == list(proxy_model.DETECT_LOCAL_MODES)
    cross = {r["fieldPath"]: r["rule"] for r in proxy["x-kubernetes-validations"]}
    assert "duration(self.minSyncPeriod) <= duration(self.syncPeriod)" in cross[".minSyncPeriod"]
    assert "self.masqueradeBit != self.dropBit" in cross[".dropBit"]
    policy = at(top, "spec", "networkPolicy")
    assert set(policy["properties"]) == {"dropLogging", "strictMode"}


def test_cluster_network_config_fields_are_the_proxy_configs() -> None:
    """Every key ProxyConfig.from_dict reads is in the CRD (spec, or spec.proxy), with the same defaults."""
    top = schema("ClusterNetworkConfig")
    spec, proxy = at(top, "spec"), at(top, "spec", "proxy")
    read = {"clusterCIDRs", "serviceCIDRs", "masqueradeAll", "masqueradeBit", "dropBit", "nodePortAddresses",
            "detectLocalMode", "mode", "externalIPRanges"}
    assert read <= set(spec["properties"]) | set(proxy["properties"])
    defaults = proxy_model.ProxyConfig()
    assert proxy["properties"]["mode"]["default"] == defaults.mode
    assert proxy["properties"]["masqueradeBit"]["default"] == defaults.masquerade_bit
    assert proxy["properties"]["dropBit"]["default"] == defaults.drop_bit
    assert proxy["properties"]["masqueradeAll"]["default"] == defaults.masquerade_all
    assert proxy["properties"]["detectLocalMode"]["default"] == defaults.detect_local


def test_dns_config_fields_are_the_parsers() -> None:
    """The CRD's spec is exactly what operators.dns.config reads, with the same enums and ranges."""
    top = schema("DNSConfig")
    spec = at(top, "spec")
    assert set(spec["properties"]) == dns_config._SPEC_FIELDS
    assert spec["properties"]["podRecords"]["enum"] == list(dns_config.POD_MODES)
    upstream = at(spec, "upstream")
    assert set(upstream["properties"]) == {"servers", "policy", "maxConcurrent", "timeoutSeconds"}
    assert upstream["properties"]["policy"]["enum"] == list(dns_config.POLICIES)
    assert at(spec, "acl", "[]", "action")["enum"] == list(dns_config.ACL_ACTIONS)
    assert at(spec, "rewrites", "[]", "match")["enum"] == list(dns_config.MATCHES)
    assert set(at(spec, "cache")["properties"]) == {"enabled", "size", "successTTL", "denialTTL"}
    bounds = {("ttl",): (0, 3600), ("hostsTTL",): (0, 86400), ("lameduckSeconds",): (0, 300),
              ("upstream", "maxConcurrent"): (1, 100000), ("upstream", "timeoutSeconds"): (0.1, 30),
              ("cache", "size"): (1, 1_000_000), ("cache", "successTTL"): (1, 86400),
              ("cache", "denialTTL"): (1, 86400)}
    for path, (low, high) in bounds.items():
        node = at(spec, *path)
        assert (node["minimum"], node["maximum"]) == (low, high), path


def test_load_balancer_ip_pool_rules() -> None:
    item = at(schema("LoadBalancerIPPool"), "spec", "ranges", "[]")
    messages = " | ".join(r["message"] for r in item["x-kubernetes-validations"])
    for needle in ("either `cidr` or `start` and `end`", "go together", "same address family", "greater than"):
        assert needle in messages
    assert at(schema("LoadBalancerIPPool"), "spec", "ranges")["minItems"] == 1


def test_kopf_peering_crd_is_kopfs() -> None:
    obj = crd("ClusterKopfPeering")
    assert obj["metadata"]["name"] == "clusterkopfpeerings.kopf.dev"
    (version,) = obj["spec"]["versions"]
    assert version["name"] == "v1" and "subresources" not in version, "Kopf writes status on the main resource"


def test_one_example_per_kind() -> None:
    kinds: dict[str, list[str]] = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for obj in load(path):
            kinds.setdefault(obj["kind"], []).append(path.name)
            if obj["kind"] in KNET_KINDS:
                assert obj["apiVersion"] == "knet.io/v1alpha1"
    for kind in KNET_KINDS:
        assert kind in kinds, f"no example of {kind} in manifests/examples"
    demo = {o["kind"] for o in load(EXAMPLES / "demo.yaml")}
    assert {"Namespace", "Deployment", "Service", "Ingress", "NetworkPolicy", "DNSConfig"} <= demo


def test_examples_parse_without_problems() -> None:
    for name in ("dnsconfig.yaml", "demo.yaml"):
        (obj,) = [o for o in load(EXAMPLES / name) if o["kind"] == "DNSConfig"]
        config, problems = dns_config.parse_dns_config(obj)
        assert problems == [], f"{name}: {problems}"
        assert config.name == "default"
    (cnc,) = load(EXAMPLES / "clusternetworkconfig.yaml")
    spec = cnc["spec"]
    config, problems = proxy_model.ProxyConfig.from_dict({**spec, **spec["proxy"]})
    assert problems == []
    assert config.mode == "nftables" and config.node_port_addresses == ("primary",)


def test_demo_ingress_uses_the_knet_class_and_an_agnhost_backend() -> None:
    objs = load(EXAMPLES / "demo.yaml")
    (ingress,) = [o for o in objs if o["kind"] == "Ingress"]
    assert ingress["spec"]["ingressClassName"] == "knet"
    (deploy,) = [o for o in objs if o["kind"] == "Deployment"]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert "agnhost" in container["image"] and container["args"][0] == "netexec"
