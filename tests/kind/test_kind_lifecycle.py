"""Containment and faults on kind: the machine keeps its routes, kernel settings and rules; nothing leaves
the machine; a missing image fails at once; a node that restarts gets its pods and rules back; uninstall
and down leave nothing behind."""

from __future__ import annotations

import subprocess

import pytest

from operators.kind.containment import leftovers, root_state, routes_off_machine
from operators.kind.layout import ROOT_LINK
from operators.kind.podman import environ
from operators.kind.podman import run as in_kind_ns
from tests.e2e.harness import wait_for
from tests.kind.conftest import NAME, apply_all, client_pod, run_readme, wait_ready


def on_node(node: str, *cmd: str) -> str:
    return in_kind_ns(["podman", "exec", node, *cmd], env=environ())


def test_machine_keeps_its_routes_kernel_settings_and_rules_while_the_cluster_runs(kind, before_up):
    now = root_state()
    assert now.sysctls == before_up.sysctls
    assert now.ruleset == before_up.ruleset
    assert now.without_link().routes == before_up.routes
    added = [r.split()[1] for r in now.routes if ROOT_LINK in r and r.startswith("v4 ") and "table local" not in r]
    assert sorted(added) == ["172.18.0.0/24", "172.18.255.0/30"]


def test_kind_namespace_routes_nothing_off_the_machine(kind):
    assert routes_off_machine() == []


def test_image_that_is_not_loaded_fails_at_once_naming_it(kind, ns):
    pod = client_pod("ghost", kind.nodes()[1]["metadata"]["name"])
    pod["spec"]["containers"][0]["image"] = "registry.k8s.io/knet-not-loaded:v0"

    def pull_error() -> str:
        st = kind.get("pod", "ghost", "-n", ns)["status"].get("containerStatuses", [{}])[0]
        waiting = st.get("state", {}).get("waiting", {})
        return waiting.get("message", "") if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff") else ""
    apply_all(kind, ns, pod)
    assert "registry.k8s.io/knet-not-loaded:v0" in wait_for(pull_error, "ErrImagePull", 20)


def test_restarted_node_gets_its_pods_and_knet_rules_back(kind, ns):
    node = f"{NAME}-worker2"
    apply_all(kind, ns, client_pod("survivor", node))
    wait_ready(kind, ns, "survivor")
    in_kind_ns(["podman", "restart", "-t", "5", node], env=environ())
    wait_for(lambda: "table inet knet-proxy" in on_node(node, "nft", "list", "tables"), "knet's rules on the node", 180)
    wait_ready(kind, ns, "survivor", timeout=180)
    assert kind.exec(f"{ns}/survivor", "true").returncode == 0


@pytest.mark.kind_teardown
def test_helm_uninstall_leaves_no_knet_table_and_no_cni_file_on_any_node(kind):
    kind.kubectl("delete", "loadbalancerippool", "kind", "--ignore-not-found")
    helm = str(kind.kubectl_bin).replace("/kubectl", "/helm")
    subprocess.run([helm, f"--kubeconfig={kind.kubeconfig}", "uninstall", "knet", "-n", "knet-system", "--wait"],
                   check=True, capture_output=True, timeout=300)
    for node in (n["metadata"]["name"] for n in kind.nodes()):
        wait_for(lambda n=node: "knet" not in on_node(n, "nft", "list", "tables"), f"no knet table on {node}", 60)
        assert "knet" not in on_node(node, "ls", "/etc/cni/net.d")


@pytest.mark.kind_teardown
def test_readme_down_leaves_nothing_and_the_machine_as_it_was(kind, before_up):
    run_readme("kind-down", timeout=600)
    assert leftovers(NAME) == []
    assert root_state() == before_up
