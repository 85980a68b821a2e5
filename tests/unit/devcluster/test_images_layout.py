"""Image resolution and the address plan."""

from __future__ import annotations

import sys

from operators.devcluster import images, upstream
from operators.devcluster.layout import Layout

AGNHOST = (sys.executable, "-m", "operators.devcluster.agnhost")


def test_agnhost_args_and_entrypoint_command() -> None:
    img = "registry.k8s.io/e2e-test-images/agnhost:2.53"
    assert images.resolve(img, None, ["netexec", "--http-port=80"]).argv == (
        *AGNHOST,
        "netexec",
        "--http-port=80",
    )
    assert images.resolve(img, ["/agnhost", "serve-hostname"], ["--port", "9"]).argv == (
        *AGNHOST,
        "serve-hostname",
        "--port",
        "9",
    )
    assert images.resolve(img, ["sh", "-c", "exit 3"], None).argv == ("sh", "-c", "exit 3")


def test_knet_image_runs_its_command_and_unknown_images_fail_with_a_list() -> None:
    assert images.resolve("localhost/knet:0.1.0", None, ["agent"]).argv == ("knet", "agent")
    assert images.resolve("ghcr.io/x/knet:1", ["knet", "dns"], ["--x"]).argv == ("knet", "dns", "--x")
    bad = images.resolve("nginx:1.27", None, None)
    assert bad.argv == () and "cannot be pulled" in bad.error and "agnhost" in bad.error
    assert images.resolve("mine@sha256:abc", None, None, knet_image="mine").argv == ("knet",)


def test_coredns_images_run_the_pinned_binary_with_their_args() -> None:
    coredns = str(upstream.bin_dir() / "coredns")
    conf = ["-conf", "/etc/coredns/Corefile"]
    for image in ("registry.k8s.io/coredns/coredns:v1.11.3", "coredns/coredns", "r:5000/coredns/coredns@sha256:0"):
        assert images.resolve(image, None, conf).argv == (coredns, *conf)
    assert images.resolve("coredns/coredns:1", ["/coredns"], conf).argv == (coredns, *conf)
    assert images.resolve("other/coredns:1", None, conf).error


def test_layout_addresses_do_not_collide_between_clusters() -> None:
    a, b = Layout("a", 0), Layout("b", 1, nodes=3, dual_stack=True)
    assert a.node_ips(0) == ["172.30.0.10"] and a.api_url == "https://172.30.0.10:6443"
    assert b.node_ips(2) == ["172.30.1.12", "fd00:172:30:1::12"]
    assert not a.underlay_v4.overlaps(b.underlay_v4)
    assert b.node_names == ["b-control-plane", "b-worker", "b-worker2"]
    assert len(a.root_link) <= 15 and a.node_ns("a-worker") == "knet-a-node-worker"
    assert a.dns_service_ip == "10.96.0.10" and a.kubernetes_service_ip == "10.96.0.1"
