"""A dual-stack devcluster: nodes and pods get both families, IPv6 pod traffic crosses nodes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from operators.devcluster import testapps
from tests.e2e.harness import Cluster, knet, wait_for

NAME = "e2e-dual"


@pytest.fixture(scope="module")
def dual() -> Iterator[Cluster]:
    proc = knet("devcluster", "up", "--name", NAME, "--nodes", "2", "--ip-family", "dual", timeout=300)
    yield Cluster(NAME, proc.stdout.strip().splitlines()[-1].removeprefix("KUBECONFIG="), {})
    knet("devcluster", "down", "--name", NAME, timeout=120)


def test_nodes_and_pods_have_both_families_and_ipv6_crosses_nodes(dual: Cluster) -> None:
    for node in dual.get("nodes")["items"]:
        cidrs = node["spec"]["podCIDRs"]
        assert len(cidrs) == 2 and ":" in cidrs[1], cidrs
        addrs = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
        assert len(addrs) == 2 and ":" in addrs[1], addrs
    dual.kubectl("create", "namespace", "ds")
    wait_for(lambda: dual.kubectl("get", "sa", "default", "-n", "ds", check=False).startswith("NAME"), "sa", 30)
    dual.apply(testapps.netexec("ds", service=False))

    def running() -> list[dict] | None:
        pods = [p for p in dual.pods("ds", "app=web") if p["status"].get("phase") == "Running"]
        return pods if len(pods) == 2 and all(len(p["status"].get("podIPs", [])) == 2 for p in pods) else None

    a, b = wait_for(running, "2 dual-stack pods", 120)
    assert a["spec"]["nodeName"] != b["spec"]["nodeName"]
    b6 = b["status"]["podIPs"][1]["ip"]
    assert b6.startswith("fd00:10:244:")
    script = (
        f"import urllib.request;print(urllib.request.urlopen('http://[{b6}]:8080/clientip',timeout=5).read().decode())"
    )
    out = wait_for(
        lambda: dual.exec(f"ds/{a['metadata']['name']}", "python3", "-c", script).stdout.strip(), "an IPv6 answer", 30
    )
    assert out.startswith(f"[{a['status']['podIPs'][1]['ip']}]:")
