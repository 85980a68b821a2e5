"""The agent's kernel calls in a throwaway network namespace: one transaction or nothing, the table check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = r"""
import asyncio, subprocess, sys
sys.path.insert(0, sys.argv[1])
from agent_builders import endpoint_slice, model, service
from operators.agent import dataplane
from operators.agent.conntrack import Flush
from operators.proxy.nftables import render_full

def listing():
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout

async def main():
    assert not await dataplane.table_present("knet-proxy")
    subprocess.run(["nft", "add", "table", "ip", "knet-proxy"], check=True)  # same name, other family
    assert not await dataplane.table_present("knet-proxy")
    ok, err = await dataplane.nft_apply(render_full(model(service(), endpoint_slice("dns", "10.244.2.5"))))
    assert ok and await dataplane.table_present("knet-proxy"), err
    before = listing()
    broken = render_full(model(service(), endpoint_slice("dns", "10.244.2.6"))) + "add rule inet knet-proxy nope drop\n"
    line = broken.count("\n")
    # small transactions run in this process, large ones in an nft process: both name the line and quote it
    for text in (broken, broken + "#" * dataplane.IN_PROCESS_MAX + "\n"):
        ok, err = await dataplane.nft_apply(text)
        assert not ok and listing() == before, err
        assert f":{line}:" in err and "add rule inet knet-proxy nope drop" in err, err
    # a full sync streams its tables to nft as they are rendered: still all or nothing
    ok, err = await dataplane.NftRules().apply(model(service(), endpoint_slice("dns", "10.244.2.7")), full=True)
    assert ok and "10.244.2.7" in listing() and "10.244.2.5" not in listing(), err
    before = listing()
    stream = dataplane.NftStream()
    stream.write(render_full(model(service(), endpoint_slice("dns", "10.244.2.8"))))
    stream.write("add rule inet knet-proxy nope drop\n")
    ok, err = await stream.finish()
    assert not ok and "nope" in err and listing() == before, err
    stream = dataplane.NftStream()
    stream.write(render_full(model(service(), endpoint_slice("dns", "10.244.2.8"))))
    stream.abort()  # a render that raised half-way: nft never sees the end of its input
    assert listing() == before
    ok, _ = await dataplane.conntrack_delete(Flush(4, "10.96.0.10", 53, "10.244.2.5", 53))
    assert ok
    bad, _ = await dataplane.conntrack_delete(Flush(4, "not-an-ip", 53))
    assert not bad
    print("ok")

asyncio.run(main())
"""


def test_transactions_are_all_or_nothing_and_the_table_check_sees_only_ours() -> None:
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "nft", "conntrack")):
        pytest.skip("needs root, nft and conntrack")
    out = subprocess.run(["unshare", "--net", sys.executable, "-c", SCRIPT, os.path.dirname(__file__)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
