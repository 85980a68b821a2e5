"""Real packets: a rendered ruleset, applied in a throwaway node namespace, does what explain says.

Pods are network namespaces with routed veths to the node namespace, so pod<->pod traffic crosses the
node's forward hook and node->pod traffic its output hook, as on a real node.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from operators.netpol.explain import explain
from operators.netpol.nftables import RenderOptions
from operators.netpol.offline import render

DRIVER = Path(__file__).with_name("dataplane_driver.py")
NODE_IP = "169.254.1.1"  # the node's address towards its pods, as the driver sets it up
GHOST = ("ghost", "10.244.1.99")  # a local pod the rules do not know yet
PODS = {
    "prod/web": ("10.244.1.10", {"app": "web"}),
    "prod/client": ("10.244.1.11", {"app": "client"}),
    "prod/other": ("10.244.1.12", {"app": "other"}),
    "dev/tool": ("10.244.1.13", {"app": "tool"}),
}
PROBES = (("80", "TCP"), ("81", "TCP"), ("53", "UDP"))


def objects() -> list[dict]:
    out: list[dict] = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-a"},
            "spec": {"podCIDRs": ["10.244.1.0/24"]},
        }
    ]
    for key, (ip, labels) in PODS.items():
        ns, name = key.split("/")
        ports = [
            {"name": "http", "containerPort": 80},
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
        ]
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"namespace": ns, "name": name, "labels": labels},
                "spec": {"nodeName": "node-a", "containers": [{"name": "c", "ports": ports}]},
                "status": {"phase": "Running", "podIPs": [{"ip": ip}]},
            }
        )
    policies = [
        (
            "prod",
            "web-ingress",
            {
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                        "ports": [{"port": "http"}, {"port": "dns", "protocol": "UDP"}],
                    }
                ],
            },
        ),
        (
            "prod",
            "other-egress",
            {
                "podSelector": {"matchLabels": {"app": "other"}},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dev"}}}]},
                    {"to": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 81}]},
                ],
            },
        ),
        (
            "dev",
            "tool-ingress",
            {
                "podSelector": {},
                "ingress": [
                    {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "other"}}}]}
                ],
            },
        ),
        (  # two ranges of one rule with a gap between them (81 stays shut)
            "prod",
            "client-ingress",
            {
                "podSelector": {"matchLabels": {"app": "client"}},
                "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80}, {"port": 82, "endPort": 90}]}],
            },
        ),
        (  # overlaps web-ingress's port 80, from other peers: the two rules' peers add up there
            "prod",
            "web-from-dev",
            {
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [
                    {
                        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dev"}}}],
                        "ports": [{"port": 53, "endPort": 81}],
                    }
                ],
            },
        ),
    ]
    for ns, name, spec in policies:
        out.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"namespace": ns, "name": name},
                "spec": spec,
            }
        )
    return out


def _usable() -> bool:
    needed = ("nft", "ip", "unshare", "sysctl", "mount")
    import shutil

    if not all(shutil.which(t) for t in needed):
        return False
    return subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _usable(), reason="needs root, nft, ip and unshare")
def test_packets_follow_explain() -> None:
    objs = objects()
    opts = RenderOptions(log_drops=True, counters=True, isolate_unprogrammed=True, filter_node_traffic=True)
    ruleset, problems = render(objs, "node-a", opts)
    assert problems == []
    netns = {key: key.replace("/", "-") for key in PODS}
    ips = {key: ip for key, (ip, _) in PODS.items()}
    probes, expected = [], []
    sources = [*PODS, "node", GHOST[0]]
    for src in sources:
        for dst in [*PODS, GHOST[0]]:
            if src == dst:
                continue
            dst_ip = GHOST[1] if dst == GHOST[0] else ips[dst]
            for port, proto in PROBES:
                probes.append([netns.get(src, src), dst_ip, int(port), proto])
                if GHOST[0] in (src, dst):
                    expected.append(False)  # not yet programmed: isolated by the guard
                else:
                    expected.append(
                        explain(objs, NODE_IP if src == "node" else src, dst, int(port), proto).allowed
                    )
    pods = [[netns[k], ips[k]] for k in PODS] + [list(GHOST)]
    spec = json.dumps({"ruleset": ruleset, "pods": pods, "probes": probes})
    proc = subprocess.run(
        ["unshare", "--net", "--mount", sys.executable, str(DRIVER)],
        input=spec,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    wrong = [
        f"{p[0]} -> {p[1]} {p[2]}/{p[3]}: got {g}, want {w}"
        for p, g, w in zip(probes, got, expected, strict=True)
        if g != w
    ]
    assert not wrong, "\n".join(wrong)
    assert any(expected) and not all(expected)
