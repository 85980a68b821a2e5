"""knet's kind clusters on paper: the config kind gets, the node names, the address plan."""

import ipaddress

import yaml

from operators.kind.cluster import REPO, render_config
from operators.kind.containment import global_sysctls
from operators.kind.layout import LB_POOL_V4, LINK_NET, NODE_NET_V4, KindLayout


def rendered(name: str = "demo", workers: int = 2, baseline: bool = False) -> dict:
    source = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    return render_config(source, KindLayout(name, workers), "localhost/knet/kind-node:test", baseline)


def test_the_cluster_gets_its_name_one_control_plane_and_the_asked_workers():
    cfg = rendered("demo", 3)
    assert cfg["name"] == "demo"
    assert [n["role"] for n in cfg["nodes"]] == ["control-plane", "worker", "worker", "worker"]


def test_every_node_runs_knet_node_image_and_keeps_the_files_settings():
    cfg = rendered()
    assert {n["image"] for n in cfg["nodes"]} == {"localhost/knet/kind-node:test"}
    assert cfg["nodes"][0]["labels"] == {"ingress-ready": "true"}
    assert cfg["networking"]["kubeProxyMode"] == "none" and cfg["networking"]["disableDefaultCNI"] is True


def test_the_baseline_is_the_same_cluster_with_kubeadms_kube_proxy_in_nftables_mode():
    knet, baseline = rendered(), rendered(baseline=True)
    assert baseline["networking"].pop("kubeProxyMode") == "nftables" and knet["networking"].pop("kubeProxyMode")
    assert baseline == knet


def test_the_repository_config_is_left_as_written():
    source = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    render_config(source, KindLayout("other", 5), "x")
    assert source["name"] == "knet" and len(source["nodes"]) == 3


def test_node_names_follow_kind():
    assert KindLayout("k", 3).node_names == ["k-control-plane", "k-worker", "k-worker2", "k-worker3"]


def test_the_pool_lies_in_the_node_network_and_the_link_outside_it():
    assert ipaddress.ip_network(LB_POOL_V4).subnet_of(NODE_NET_V4)
    assert not LINK_NET.overlaps(NODE_NET_V4)


def test_the_kubelet_tunables_are_among_the_shielded_settings():
    assert {"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory"} <= set(global_sysctls())
