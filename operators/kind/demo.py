"""`make demo`: knet on a real kind cluster. `knet kind up --install` (images built or reused, knet loaded
and installed with Helm), then the same demo application and checks as the devcluster's demo
(operators/devcluster/demo.py), from real pods through real kubelets, and from the machine's side of
kind's network as the external client. The cluster keeps running for the user to explore."""

from __future__ import annotations

import sys
import time

from operators.devcluster import upstream
from operators.devcluster.cluster import DevclusterError
from operators.devcluster.demo import CHART, Demo, Target, check_demo, show_workloads, summary

from . import cluster
from .layout import LB_POOL_V4, NETNS, KindLayout
from .podman import KindError

NAME = "knet"


def kind_target(layout: KindLayout) -> Target:
    def argv(where: str) -> list[str]:
        if where == "external":
            return ["nsenter", f"--net=/run/netns/{NETNS}", "--"]
        ns, pod = where.split("/", 1)
        return [str(upstream.bin_dir() / "kubectl"), f"--kubeconfig={layout.kubeconfig}", "exec", "-n", ns, pod, "--"]
    return Target(layout.kubeconfig, argv, LB_POOL_V4, CHART / "ci" / "kind-values.yaml",
                  f"https://{layout.control_plane}:6443",
                  dns="kubeadm's CoreDNS at 10.96.0.10, its Corefile rendered by knet's controller from the "
                      "DNSConfig `default` (the kubelet's ConfigMap refresh, then CoreDNS's reload)",
                  dns_timeout=180, pool="kind")


def main() -> int:
    print("== knet on kind: podman nodes with real kubelets and containerd, knet from its own image")
    t0 = time.monotonic()
    try:
        d = Demo(kind_target(cluster.up(NAME, install_knet=True)))  # knet's image loaded, the chart installed
        show_workloads(d, True)
        check_demo(d, True)
    except (KindError, DevclusterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return summary(d, t0, [f'eval "$(.venv/bin/knet kind env --name {NAME})"; kubectl get pods -A -o wide',
                           "kubectl -n demo exec client -- curl -s web.demo/hostname",
                           "Stop it with: make demo-down (the devcluster's demo: make demo-devcluster)"])


if __name__ == "__main__":
    sys.exit(main())
