"""The cluster itself: real kubelets on three kind nodes, reached through the API server."""

from tests.kind.conftest import apply_all, client_pod, wait_ready


def test_three_nodes_are_ready_with_the_pinned_kubelet(kind):
    nodes = kind.nodes()
    assert len(nodes) == 3
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {"v1.37.1"}
    assert all(c["status"] == "True" for n in nodes for c in n["status"]["conditions"] if c["type"] == "Ready")


def test_nodes_run_containerd_2_and_no_kube_proxy(kind):
    assert all(n["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.") for n in kind.nodes())
    assert not kind.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-proxy")["items"]


def test_kubectl_exec_and_logs_go_through_the_kubelet(kind, ns):
    worker = kind.nodes()[1]["metadata"]["name"]
    pod = client_pod("talker", worker) | {}
    pod["spec"]["containers"][0]["command"] = ["sh", "-c", "echo hello from $(hostname); sleep infinity"]
    apply_all(kind, ns, pod)
    wait_ready(kind, ns, "talker")
    assert kind.exec(f"{ns}/talker", "cat", "/etc/hostname").stdout.strip() == "talker"
    assert "hello from talker" in kind.kubectl("logs", "-n", ns, "talker")


def test_every_knet_component_runs_from_knet_image(kind):
    pods = kind.get("pods", "-n", "knet-system")["items"]
    components = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods}
    assert {"agent", "controller", "dns", "ingress"} <= components
    assert all(c["image"].startswith("localhost/knet:") for p in pods for c in p["spec"]["containers"])
    assert all(p["status"]["phase"] == "Running" for p in pods)
