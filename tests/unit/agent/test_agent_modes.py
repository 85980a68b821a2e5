"""Both proxy modes in a throwaway network namespace: iptables-restore with our chains only, the jumps
repaired, a failed transaction changing nothing, and a switch of mode leaving only the new mode's rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = r"""
import asyncio, dataclasses, subprocess, sys
sys.path.insert(0, sys.argv[1])
from agent_builders import endpoint_slice, model, service
from operators.agent import dataplane

def save(tool="iptables-save"):
    return subprocess.run([tool], capture_output=True, text=True).stdout

def nft_tables():
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout

def with_mode(m, mode):
    return dataclasses.replace(m, config=dataclasses.replace(m.config, mode=mode))

async def main():
    # someone else's rules in the same tables stay untouched throughout
    subprocess.run(["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.0/24", "-j", "RETURN"], check=True)
    plane = dataplane.Dataplane()
    nft_model = model(service(), endpoint_slice("dns", "10.244.2.5"))
    ok, err = await plane.apply(nft_model, full=True)
    assert ok and plane.mode == "nftables" and "knet-proxy" in nft_tables(), err
    assert await plane.present("nftables") and not await plane.present("iptables")

    ipt = with_mode(nft_model, "iptables")
    ok, err = await plane.apply(ipt, full=False)
    assert ok and plane.mode == "iptables", err
    assert "knet-proxy" not in nft_tables(), "the old mode's table is gone"
    text = save()
    assert "--to-destination 10.244.2.5:53" in text and "-s 192.0.2.0/24 -j RETURN" in text, text
    assert text.count("-j KNET-SERVICES") == 4, text  # nat PREROUTING, OUTPUT; filter FORWARD, OUTPUT
    assert "KNET-SERVICES" in save("ip6tables-save")
    assert await plane.present("iptables") and plane.rules > 5

    # an endpoint change: the old endpoint chain goes, the jumps are not duplicated
    ok, err = await plane.apply(with_mode(model(service(), endpoint_slice("dns", "10.244.2.6")), "iptables"), False)
    text = save()
    assert ok and "10.244.2.6:53" in text and "10.244.2.5" not in text and text.count("-j KNET-SERVICES") == 4, text

    # a removed jump is noticed and put back, in order
    subprocess.run(["iptables", "-t", "nat", "-D", "PREROUTING", "-m", "comment", "--comment",
                    "knet service portals", "-j", "KNET-SERVICES"], check=True)
    assert not await plane.present("iptables")
    ok, err = await plane.apply(with_mode(model(service(), endpoint_slice("dns", "10.244.2.6")), "iptables"), True)
    assert ok and await plane.present("iptables"), err

    # a chain that must go but that someone else references: the transaction fails, nothing changes
    sep = next(l.split()[0][1:] for l in save().splitlines() if l.startswith(":KNET-SEP-"))
    subprocess.run(["iptables", "-t", "nat", "-A", "OUTPUT", "-d", "192.0.2.9", "-j", sep], check=True)
    before = save()
    ok, err = await plane.apply(with_mode(model(service(), endpoint_slice("dns", "10.244.2.7")), "iptables"), False)
    assert not ok and "busy" in err.lower(), err
    strip = lambda t: [l for l in t.splitlines() if not l.startswith("#")]
    assert strip(save()) == strip(before)
    subprocess.run(["iptables", "-t", "nat", "-D", "OUTPUT", "-d", "192.0.2.9", "-j", sep], check=True)

    ok, err = await plane.apply(nft_model, full=False)  # back to nftables: every KNET chain and jump goes
    assert ok and plane.mode == "nftables" and "knet-proxy" in nft_tables(), err
    assert "KNET" not in save() and "KNET" not in save("ip6tables-save"), save()
    assert "-s 192.0.2.0/24 -j RETURN" in save()
    print("ok")

asyncio.run(main())
"""


def test_iptables_mode_and_switching_modes_in_a_network_namespace() -> None:
    tools = ("unshare", "nft", "iptables-restore", "ip6tables-restore", "iptables-save")
    if os.geteuid() != 0 or not all(shutil.which(t) for t in tools):
        pytest.skip("needs root, nft and iptables")
    out = subprocess.run(["unshare", "--net", sys.executable, "-c", SCRIPT, os.path.dirname(__file__)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr
