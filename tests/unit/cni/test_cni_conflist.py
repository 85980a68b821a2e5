"""The node's CNI configuration list (operators/cni/conflist.py): kindnet's ptp + host-local + portmap."""

from __future__ import annotations

import json

import pytest

from operators.cni.conflist import is_ours, render_conflist


def ptp(text: str) -> dict:
    return json.loads(text)["plugins"][0]


def test_named_knet_with_ptp_then_portmap_and_no_masquerade_per_pod() -> None:
    conf = json.loads(render_conflist(["10.244.1.0/24"]))
    assert (conf["name"], conf["cniVersion"]) == ("knet", "0.4.0")
    assert [p["type"] for p in conf["plugins"]] == ["ptp", "portmap"]
    assert conf["plugins"][0]["ipMasq"] is False and conf["plugins"][1]["capabilities"] == {"portMappings": True}


def test_one_range_set_and_one_default_route_per_family_in_the_nodes_order() -> None:
    ipam = ptp(render_conflist(["fd00:10:244:1::/64", "10.244.1.0/24"]))["ipam"]
    assert ipam["ranges"] == [[{"subnet": "fd00:10:244:1::/64"}], [{"subnet": "10.244.1.0/24"}]]
    assert ipam["routes"] == [{"dst": "::/0"}, {"dst": "0.0.0.0/0"}]


def test_host_local_keeps_its_state_on_tmpfs() -> None:
    assert ptp(render_conflist(["10.244.1.0/24"]))["ipam"]["dataDir"] == "/run/cni-ipam-state"


def test_the_mtu_only_when_given() -> None:
    assert "mtu" not in ptp(render_conflist(["10.244.1.0/24"]))
    assert ptp(render_conflist(["10.244.1.0/24"], mtu=1450))["mtu"] == 1450


def test_same_input_same_bytes() -> None:
    assert render_conflist(("10.244.1.0/24",), 1500) == render_conflist(["10.244.1.0/24"], 1500)
    assert render_conflist(["10.244.1.0/24"]).endswith("}\n")


@pytest.mark.parametrize(("cidrs", "mtu"), [([], None), (["10.244.1.0/24"], 0)])
def test_refuses_no_podcidr_and_a_zero_mtu(cidrs: list[str], mtu: int | None) -> None:
    with pytest.raises(ValueError):
        render_conflist(cidrs, mtu)


@pytest.mark.parametrize(("text", "ours"), [(render_conflist(["10.244.1.0/24"]), True),
                                             ('{"name": "kindnet", "plugins": []}', False), ("not json", False)])
def test_only_knets_own_file_counts_as_ours(text: str, ours: bool) -> None:
    assert is_ours(text) is ours
