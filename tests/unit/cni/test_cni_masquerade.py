"""`table inet knet-cni` (operators/cni/masquerade.py): pod traffic leaving the pod ranges is masqueraded;
the kernel's nft accepts every golden table (checked in a throwaway network namespace)."""

from __future__ import annotations

from pathlib import Path

from operators.cni.masquerade import pod_ranges, render_cleanup, render_masquerade
from operators.kube.services import Node

GOLDEN = Path(__file__).parents[2] / "golden" / "cni" / "expected"


def test_pod_ranges_merge_the_cluster_cidrs_with_every_nodes_podcidrs() -> None:
    nodes = [Node("a", (), (), ("10.244.1.0/24",)), Node("b", (), (), ("10.100.0.0/24", "fd00:1::/64"))]
    assert pod_ranges(["10.244.0.0/16"], nodes) == ("10.100.0.0/24", "10.244.0.0/16", "fd00:1::/64")


def test_only_pod_sources_to_destinations_outside_the_pod_ranges_are_masqueraded() -> None:
    text = render_masquerade(["10.244.0.0/16", "fd00:10:244::/56"])
    assert "ip saddr @pod-ranges-v4 ip daddr != @pod-ranges-v4 masquerade fully-random" in text
    assert "ip6 saddr @pod-ranges-v6 ip6 daddr != @pod-ranges-v6 masquerade fully-random" in text


def test_after_the_proxys_masquerading_in_nat_postrouting() -> None:
    assert "type nat hook postrouting priority 110; policy accept;" in render_masquerade(["10.244.0.0/16"])


def test_a_family_without_pod_ranges_gets_no_rule() -> None:
    assert "ip6" not in render_masquerade(["10.244.0.0/16"])


def test_the_whole_table_is_replaced_in_one_transaction() -> None:
    lines = render_masquerade(["10.244.0.0/16"]).splitlines()
    assert lines[1:4] == ["add table inet knet-cni", "delete table inet knet-cni", "table inet knet-cni {"]
    assert render_cleanup() == "add table inet knet-cni\ndelete table inet knet-cni\n"


def test_the_kernel_accepts_every_golden_table(nft_check) -> None:
    tables = sorted(GOLDEN.glob("*.nft"))
    assert tables and nft_check(tables) == []
