"""nft accepts what we render: the golden rulesets, every case with all options on, and huge policies."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from operators.kube.objects import load_objects
from operators.netpol.nftables import RenderOptions
from operators.netpol.offline import render

GOLDEN = Path(__file__).parents[2] / "golden" / "netpol"
ALL_OPTIONS = RenderOptions(
    log_drops=True, counters=True, isolate_unprogrammed=True, filter_node_traffic=True
)
NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "node-a"},
    "spec": {"podCIDRs": ["10.244.1.0/24"]},
}


def test_expected_rulesets_are_accepted(nft_check) -> None:
    files = sorted((GOLDEN / "expected").glob("*.nft"))
    assert files and nft_check(files) == []


def test_every_case_with_all_options_is_accepted(nft_check, tmp_path) -> None:
    files = []
    for case in sorted((GOLDEN / "cases").glob("*.yaml")):
        objects = [o for o in load_objects([case]) if o["kind"] not in ("GoldenCase", "Node")]
        text, _ = render([*objects, NODE], "node-a", ALL_OPTIONS)
        files.append(tmp_path / f"{case.stem}.nft")
        files[-1].write_text(text)
    assert nft_check(files) == []


def huge_objects(n_blocks: int = 3000, n_pods: int = 1000) -> list[dict]:
    blocks = [
        {
            "ipBlock": {
                "cidr": f"172.{16 + i // 250 % 16}.{i % 250}.0/24",
                "except": [f"172.{16 + i // 250 % 16}.{i % 250}.128/25"],
            }
        }
        for i in range(n_blocks)
    ]
    ports = [{"port": 1000 + 3 * i, "endPort": 1001 + 3 * i} for i in range(300)] + [{"port": "metrics"}]
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"namespace": "big", "name": f"p{i}", "labels": {"app": "big", "shard": str(i % 7)}},
            "spec": {
                "nodeName": "node-a" if i % 2 else "node-b",
                "containers": [{"ports": [{"name": "metrics", "containerPort": 9000 + i % 5}]}],
            },
            "status": {
                "phase": "Running",
                "podIPs": [{"ip": f"10.{244 + i // 60000}.{i // 250 % 256}.{i % 250 + 1}"}],
            },
        }
        for i in range(n_pods)
    ]
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"namespace": "big", "name": "huge"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "big"}},
            "ingress": [{"from": [*blocks, {"podSelector": {}}], "ports": ports}],
            "egress": [
                {"to": [{"podSelector": {"matchLabels": {"shard": "1"}}}], "ports": [{"port": "metrics"}]}
            ],
        },
    }
    per_shard = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"namespace": "big", "name": f"shard-{s}"},
            "spec": {
                "podSelector": {"matchLabels": {"shard": str(s)}},
                "ingress": [{"from": [{"namespaceSelector": {}}]}],
            },
        }
        for s in range(7)
    ]
    return [*pods, policy, *per_shard, NODE]


def test_huge_policy_renders_quickly_and_is_accepted(nft_check, tmp_path) -> None:
    objects = huge_objects()
    start = time.monotonic()
    text, problems = render(objects, "node-a", ALL_OPTIONS)
    elapsed = time.monotonic() - start
    assert problems == []
    assert elapsed < 5, f"rendering took {elapsed:.1f}s"
    # pods share chains by policy set and resolved ports: 7 shards x 5 metrics ports at most
    assert len(re.findall(r"^\tchain in-[0-9a-f]+ \{$", text, re.M)) <= 35 and text.count("jump in-") == 500
    path = tmp_path / "huge.nft"
    path.write_text(text)
    assert nft_check([path]) == []


def test_log_rate_is_validated() -> None:
    for bad in (0, -1, 10001, "5; flush ruleset", True):
        with pytest.raises(ValueError):
            RenderOptions(log_rate=bad)
