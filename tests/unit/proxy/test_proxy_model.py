"""The proxy model: which endpoints, which traffic policy, what is skipped, and config parsing."""

from __future__ import annotations

from typing import Any

from operators.proxy.model import ProxiedPort, ProxyConfig, ProxyModel, Target
from operators.proxy.offline import model_from_objects


def svc(name: str = "web", ips: tuple[str, ...] = ("10.96.0.1",), **spec: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": spec.pop("namespace", "default"), "labels": spec.pop("labels", {}),
            "creationTimestamp": spec.pop("created", None), "uid": spec.pop("uid", None)}
    status = {"loadBalancer": {"ingress": [{"ip": ip} for ip in spec.pop("lb_ips", ())]}}
    spec.setdefault("ports", [{"name": "http", "port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"clusterIPs": list(ips), **spec}, "status": status}


def ep(ip: str, node: str = "node-b", **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": node, "conditions": conditions}


def eps(service: str = "web", *endpoints: dict[str, Any], port: int = 8080, name: str = "1",
        family: int = 4) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-{name}", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": f"IPv{family}", "ports": [{"name": "http", "port": port}],
            "endpoints": list(endpoints)}


NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
        "spec": {"podCIDRs": ["10.244.1.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}


EXTERNAL_RANGES = {"externalIPRanges": ["198.51.100.0/24", "2001:db8::/32"]}
DNS_PORT = [{"name": "dns", "port": 53, "protocol": "UDP"}]


def build(*objects: dict[str, Any], config: dict[str, Any] | None = None) -> tuple[ProxyModel, list[str]]:
    """The model of node-a; externalIPs are allowed in the documentation ranges unless `config` says."""
    model, problems = model_from_objects([*objects, NODE], "node-a", EXTERNAL_RANGES if config is None else config)
    return model, [str(p) for p in problems]


def only(model: ProxyModel) -> ProxiedPort:
    (port,) = model.ports
    return port


def ips(targets: tuple[Target, ...]) -> list[str]:
    return [t.ip for t in targets]


def test_ready_endpoints_only() -> None:
    draining = ep("10.244.1.1", node="node-a", ready=False, serving=True, terminating=True)
    port = only(build(svc(), eps("web", ep("10.244.2.2"), ep("10.244.2.1", ready=False), draining))[0])
    assert port.cluster_endpoints == (Target("10.244.2.2", 8080, False),)
    assert port.has_endpoints and port.local_endpoints == ()


def test_serving_terminating_when_none_ready() -> None:
    port = only(build(svc(), eps("web", ep("10.244.2.2", ready=False, serving=True, terminating=True),
                                 ep("10.244.2.3", ready=False, serving=False, terminating=True)))[0])
    assert ips(port.cluster_endpoints) == ["10.244.2.2"]


def test_no_usable_endpoints() -> None:
    port = only(build(svc(), eps("web", ep("10.244.2.2", ready=False)))[0])
    assert not port.has_endpoints and port.internal_endpoints == ()


def test_slices_labelled_headless_give_no_endpoints() -> None:
    dns_only = eps("web", ep("10.244.2.3"), name="2")
    dns_only["metadata"]["labels"]["service.kubernetes.io/headless"] = ""
    port = only(build(svc(), eps("web", ep("10.244.2.2")), dns_only)[0])
    assert ips(port.cluster_endpoints) == ["10.244.2.2"]


def test_named_target_port_resolved_per_slice() -> None:
    model, _ = build(svc(ports=[{"name": "http", "port": 80, "targetPort": "web"}]),
                     eps("web", ep("10.244.2.2"), port=8080, name="a"),
                     eps("web", ep("10.244.2.3"), port=9090, name="b"))
    targets = only(model).cluster_endpoints
    assert [(t.ip, t.port) for t in targets] == [("10.244.2.2", 8080), ("10.244.2.3", 9090)]


def test_slice_port_must_match_name_and_protocol() -> None:
    udp = svc(ports=[{"name": "http", "port": 80, "protocol": "UDP"}])
    assert not only(build(udp, eps("web", ep("10.244.2.2")))[0]).has_endpoints


def test_duplicate_endpoints_keep_the_healthiest() -> None:
    port = only(build(svc(), eps("web", ep("10.244.2.2", ready=False), name="a"),
                      eps("web", ep("10.244.2.2"), name="b"))[0])
    assert ips(port.cluster_endpoints) == ["10.244.2.2"]


def test_external_local_policy() -> None:
    model, _ = build(svc(type="NodePort", externalTrafficPolicy="Local",
                         ports=[{"name": "http", "port": 80, "nodePort": 30080}]),
                     eps("web", ep("10.244.1.5", node="node-a"), ep("10.244.2.5")))
    port = only(model)
    assert port.external_local and not port.internal_local
    assert ips(port.local_endpoints) == ["10.244.1.5"]
    assert ips(port.cluster_endpoints) == ["10.244.1.5", "10.244.2.5"]  # for pod/node short-circuit
    assert port.external_endpoints == port.local_endpoints and port.uses_external_chain


def test_external_local_policy_needs_external_access() -> None:
    port = only(build(svc(externalTrafficPolicy="Local"), eps("web", ep("10.244.2.5")))[0])
    assert not port.external_local and not port.externally_accessible


def test_internal_local_policy_without_local_endpoints() -> None:
    port = only(build(svc(internalTrafficPolicy="Local"), eps("web", ep("10.244.2.5")))[0])
    assert port.internal_local and port.has_endpoints
    assert port.internal_endpoints == () and port.cluster_endpoints == ()


def test_skipped_services() -> None:
    model, problems = build(
        svc("headless", ("None",)),
        svc("alias", (), type="ExternalName", externalName="example.com"),
        svc("other", labels={"service.kubernetes.io/service-proxy-name": "x"}),
        svc("dns-only", labels={"service.kubernetes.io/headless": ""}),
    )
    assert model.ports == () and model.cluster_ips == () and problems == []


def test_dual_stack() -> None:
    dual = svc(ips=("10.96.0.1", "fd00:10:96::1"), externalIPs=["198.51.100.1", "2001:db8::1"])
    model, problems = build(dual,
                            eps("web", ep("10.244.2.5"), name="v4"),
                            eps("web", ep("fd00:10:244:2::5"), name="v6", family=6))
    v4, v6 = model.ports
    assert (v4.family, v4.cluster_ip, v4.external_ips, ips(v4.cluster_endpoints)) == (
        4, "10.96.0.1", ("198.51.100.1",), ["10.244.2.5"])
    assert (v6.family, v6.cluster_ip, v6.external_ips, ips(v6.cluster_endpoints)) == (
        6, "fd00:10:96::1", ("2001:db8::1",), ["fd00:10:244:2::5"])
    assert model.families == (4, 6) and problems == []


def test_foreign_family_addresses_are_ignored() -> None:
    model, problems = build(svc(externalIPs=["2001:db8::1"]))
    assert only(model).external_ips == ()
    assert problems == [
        "Service default/web: externalIP 2001:db8::1 ignored: the Service has no IPv6 clusterIP"]


def test_collisions_go_to_the_first_service() -> None:
    np = [{"name": "http", "port": 80, "nodePort": 30080}]
    model, problems = build(svc("a", type="NodePort", ports=np),
                            svc("b", ("10.96.0.2",), type="NodePort", ports=np), svc("c", ("10.96.0.1",)))
    a, b = model.ports
    assert (a.name, a.node_port, b.name, b.node_port) == ("a", 30080, "b", 0)
    assert problems == [
        "Service default/b: nodePort 30080/TCP is already used by Service default/a port http; ignored here",
        "Service default/c: 10.96.0.1 port http/TCP is already used by Service default/a port http; "
        "ignored here"]


def test_external_ips_only_within_the_allowed_ranges() -> None:
    model, problems = build(svc(externalIPs=["198.51.100.1", "192.0.2.1"]))
    assert only(model).external_ips == ("198.51.100.1",)
    assert problems == ["Service default/web: externalIP 192.0.2.1 is outside ClusterNetworkConfig "
                        "spec.proxy.externalIPRanges; ignored"]


def test_no_external_ips_by_default() -> None:
    model, problems = build(svc(externalIPs=["198.51.100.1"]), config={})
    assert only(model).external_ips == () and len(problems) == 1


def test_no_node_address_is_an_external_ip() -> None:
    other = {**NODE, "metadata": {"name": "node-b"},
             "status": {"addresses": [{"type": "ExternalIP", "address": "172.18.0.3"}]}}
    model, problems = build(svc(externalIPs=["172.18.0.2", "172.18.0.3"]), other,
                            config={"externalIPRanges": ["172.18.0.0/16"]})
    assert only(model).external_ips == () and all("is a Node's address" in p for p in problems)


def test_a_cluster_ip_wins_over_an_external_or_lb_ip() -> None:
    dns = svc("kube-dns", ("10.96.0.10",), namespace="kube-system", ports=DNS_PORT)
    thief = svc("x", ("10.96.5.5",), namespace="a", type="LoadBalancer", externalIPs=["10.96.0.10"],
                lb_ips=["10.96.0.10"], ports=DNS_PORT, created="2020-01-01T00:00:00Z")
    model, problems = build(dns, thief, config={"externalIPRanges": ["10.96.0.0/16"]})
    assert [(p.name, p.external_ips, p.lb_ips) for p in model.ports] == [("x", (), ()), ("kube-dns", (), ())]
    assert problems == ["Service a/x: 10.96.0.10 is a ClusterIP of Service kube-system/kube-dns; "
                        "not used for port dns"] * 2


def test_the_older_service_wins_an_external_ip() -> None:
    old = svc("z", ("10.96.0.1",), namespace="zz", created="2026-01-01T00:00:00Z", externalIPs=["198.51.100.1"])
    new = svc("a", ("10.96.0.2",), namespace="aa", created="2026-02-01T00:00:00Z", externalIPs=["198.51.100.1"])
    model, _ = build(new, old)
    assert {p.name: p.external_ips for p in model.ports} == {"a": (), "z": ("198.51.100.1",)}


def test_the_lower_uid_wins_between_services_of_one_second() -> None:
    same = {"created": "2026-01-01T00:00:00Z", "externalIPs": ["198.51.100.1"]}
    model, _ = build(svc("a", ("10.96.0.1",), uid="2", **same), svc("b", ("10.96.0.2",), uid="1", **same))
    assert {p.name: p.external_ips for p in model.ports} == {"a": (), "b": ("198.51.100.1",)}


def test_source_ranges() -> None:
    lb = {"type": "LoadBalancer", "lb_ips": ["172.18.255.1", "fc00::1"], "ports": [{"name": "h", "port": 80}]}
    ranges = ["203.0.113.0/24"]
    model, _ = build(svc(ips=("10.96.0.1", "fd00:10:96::1"), loadBalancerSourceRanges=ranges, **lb))
    v4, v6 = model.ports
    assert v4.source_ranges == ("203.0.113.0/24",) and v4.firewalled
    assert v6.source_ranges == () and v6.firewalled  # no IPv6 range given: IPv6 sources all dropped
    model, _ = build(svc(loadBalancerSourceRanges=["172.18.0.0/24"], **lb))
    assert only(model).source_ranges == ("172.18.0.0/24", "172.18.255.1")  # the node itself is in range
    model, _ = build(svc(**lb))
    assert only(model).source_ranges is None and not only(model).firewalled


def test_health_checks_count_local_ready_endpoints() -> None:
    model, _ = build(svc(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=32000,
                         ports=[{"name": "http", "port": 80, "nodePort": 30080}]),
                     eps("web", ep("10.244.1.5", node="node-a"), ep("10.244.1.6", node="node-a", ready=False),
                         ep("10.244.2.5")))
    (hc,) = model.health_checks
    assert (hc.namespace, hc.name, hc.node_port, hc.local_endpoints) == ("default", "web", 32000, 1)


def test_affinity() -> None:
    assert only(build(svc(sessionAffinity="ClientIP"))[0]).affinity_seconds == 10800
    assert only(build(svc())[0]).affinity_seconds == 0


def test_node_port_addresses_and_local_detection() -> None:
    config = {"nodePortAddresses": ["primary", "192.168.0.0/16"], "detectLocalMode": "NodeCIDR"}
    model, problems = build(config=config)
    assert model.nodeport_cidrs == ("192.168.0.0/16", "172.18.0.2/32")
    assert model.local_cidrs == ("10.244.1.0/24",) and problems == []
    model, _ = build()
    assert model.nodeport_cidrs == () and model.local_cidrs == ProxyConfig().cluster_cidrs


def test_config_from_dict() -> None:
    assert ProxyConfig.from_dict(None) == (ProxyConfig(), [])
    config, problems = ProxyConfig.from_dict({
        "clusterCIDRs": ["10.1.0.0/16", "bad"], "serviceCIDRs": "10.2.0.0/16", "masqueradeAll": "yes",
        "masqueradeBit": 15, "mode": "ipvs", "nodePortAddresses": ["::1/128"], "detectLocalMode": "NodeCIDR",
    })
    assert config == ProxyConfig(cluster_cidrs=("10.1.0.0/16",), detect_local="NodeCIDR")
    assert [p.message.split(" ")[0] for p in problems] == [
        "masqueradeAll", "masqueradeBit", "clusterCIDRs:", "serviceCIDRs", "nodePortAddresses:", "mode"]
    config, _ = ProxyConfig.from_dict({"masqueradeAll": True, "masqueradeBit": 3, "mode": "iptables"})
    assert (config.masquerade_all, config.masquerade_mark, config.drop_mark, config.mode) == (
        True, 0x8, 0x8000, "iptables")
