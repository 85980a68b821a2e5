"""CNI mode's shell (operators/agent/cni.py): the conflist written atomically and only when it differs, the
plan applied with the kernel and API faked, problems posted once on the Node, the CNI side started by the
Node listing alone; uninstalling removes only knet's conflist."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from agent_builders import Recorder
from prometheus_client import CollectorRegistry

from operators.agent import cni as cni_mode
from operators.agent import dataplane, routes, uninstall
from operators.agent.cni import CniAgent, remove_conflist, write_conflist
from operators.agent.cni_metrics import CniMetrics
from operators.agent.metrics import Metrics
from operators.agent.operator import Feeds
from operators.agent.proxy import ProxyAgent
from operators.agent.routes import Outcome
from operators.agent.store import node_entry
from operators.cni.conflist import render_conflist
from operators.cni.masquerade import TABLE
from operators.cni.routes import Route
from operators.kube.client import Client
from operators.proxy.model import ProxyConfig
from operators.runtime.login import Credentials
from operators.runtime.schedule import Periods


def node(name: str, ip: str, *cidrs: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": f"uid-{name}"},
            "spec": {"podCIDRs": list(cidrs)}, "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


A, B = node("a", "172.18.0.2", "10.244.0.0/24"), node("b", "172.18.0.3", "10.244.1.0/24")


def test_the_conflist_is_written_only_when_its_bytes_differ(tmp_path: Path) -> None:
    path = tmp_path / "10-knet.conflist"
    assert write_conflist(path, "one\n") and not write_conflist(path, "one\n")
    assert path.read_text() == "one\n" and oct(path.stat().st_mode & 0o777) == "0o644"


def test_the_conflist_is_replaced_by_a_rename_leaving_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "10-knet.conflist"
    write_conflist(path, "one\n")
    before = path.stat().st_ino
    assert write_conflist(path, "two\n") and path.stat().st_ino != before
    assert [p.name for p in tmp_path.iterdir()] == ["10-knet.conflist"]


def test_uninstall_removes_knets_conflist_and_leaves_another_cnis(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "10-knet.conflist", tmp_path / "10-kindnet.conflist"
    ours.write_text(render_conflist(["10.244.0.0/24"]))
    theirs.write_text('{"name": "kindnet"}')
    assert remove_conflist(ours) == "" and not ours.exists()
    assert "not knet's" in remove_conflist(theirs) and theirs.exists()
    assert remove_conflist(tmp_path / "missing.conflist") == ""


def test_uninstalling_undoes_cni_mode_only_when_it_was_on(monkeypatch: pytest.MonkeyPatch) -> None:
    undone: list[Path] = []

    async def remove(path: Path) -> list[str]:
        undone.append(path)
        return []

    async def applied(text: str) -> tuple[bool, str]:
        return True, ""

    monkeypatch.setattr(cni_mode, "remove", remove)
    monkeypatch.setattr(dataplane, "MODES", {})
    monkeypatch.setattr(dataplane, "nft_apply", applied)
    assert asyncio.run(uninstall.remove_rules()) == [] and undone == []
    assert asyncio.run(uninstall.remove_rules("/etc/cni/net.d/10-knet.conflist")) == []
    assert undone == [Path("/etc/cni/net.d/10-knet.conflist")]


class Kernel:
    """Stands in for netlink and nft: records the routes asked for and the transactions."""

    def __init__(self) -> None:
        self.routes: list[frozenset[Route]] = []
        self.transactions: list[str] = []
        self.route_errors: tuple[str, ...] = ()
        self.table = False

    def reconcile(self, wanted: frozenset[Route]) -> Outcome:
        self.routes.append(wanted)
        return Outcome(tuple(sorted(wanted)), (), self.route_errors, len(self.route_errors))

    async def table_present(self, table: str) -> bool:
        return table == TABLE and self.table

    async def nft_apply(self, text: str) -> tuple[bool, str]:
        self.transactions.append(text)
        self.table = True
        return True, ""


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Kernel:
    k = Kernel()
    monkeypatch.setattr(routes, "reconcile", k.reconcile)
    monkeypatch.setattr(dataplane, "table_present", k.table_present)
    monkeypatch.setattr(dataplane, "nft_apply", k.nft_apply)
    return k


def cni_agent(tmp_path: Path, *nodes: dict[str, Any], recorder: Recorder | None = None) -> CniAgent:
    agent = CniAgent("a", tmp_path / "10-knet.conflist", 1500, Periods(min=0, max=10, full=3600),
                     CniMetrics(CollectorRegistry()), recorder)  # type: ignore[arg-type]
    agent.attach([node_entry(n) for n in nodes])
    return agent


def sync(agent: CniAgent) -> None:
    asyncio.run(agent.sync(time.monotonic()))


def test_a_sync_writes_the_conflist_routes_the_peers_and_masquerades(kernel: Kernel, tmp_path: Path) -> None:
    agent = cni_agent(tmp_path, A, B)
    sync(agent)
    assert (tmp_path / "10-knet.conflist").read_text() == render_conflist(["10.244.0.0/24"], 1500)
    assert kernel.routes == [{Route("10.244.1.0/24", "172.18.0.3")}]
    assert len(kernel.transactions) == 1 and f"table inet {TABLE}" in kernel.transactions[0]


def test_an_unchanged_table_is_not_applied_again_but_a_removed_one_is(kernel: Kernel, tmp_path: Path) -> None:
    agent = cni_agent(tmp_path, A, B)
    sync(agent)
    sync(agent)
    assert len(kernel.transactions) == 1
    kernel.table = False
    sync(agent)
    assert len(kernel.transactions) == 2


def test_no_conflist_before_the_node_has_podcidrs(kernel: Kernel, tmp_path: Path) -> None:
    sync(cni_agent(tmp_path, node("a", "172.18.0.2"), B))
    assert not (tmp_path / "10-knet.conflist").exists() and kernel.routes == [{Route("10.244.1.0/24", "172.18.0.3")}]


def test_a_failed_route_fails_the_sync_but_not_the_conflist(kernel: Kernel, tmp_path: Path) -> None:
    kernel.route_errors = ("ip route replace 10.244.1.0/24 via 172.18.0.3 proto 75: Network is unreachable",)
    agent = cni_agent(tmp_path, A, B)
    sync(agent)
    assert agent.state.failures == 1 and (tmp_path / "10-knet.conflist").exists()
    assert agent.metrics.registry.get_sample_value("knet_cni_peer_routes") == 0


def test_a_peer_without_podcidrs_gets_one_event_on_its_node(kernel: Kernel, tmp_path: Path) -> None:
    recorder = Recorder()
    agent = cni_agent(tmp_path, A, node("c", "172.18.0.4"), recorder=recorder)
    sync(agent)
    sync(agent)
    [(ref, reason, message)] = recorder.posted
    assert (ref.kind, ref.name, ref.uid, reason) == ("Node", "c", "uid-c", "CNIProblem") and "no podCIDRs" in message


def test_the_cni_side_starts_with_the_node_listing_alone() -> None:
    proxy = ProxyAgent("a", ProxyConfig(), Periods(), Metrics(), None)
    cni = CniAgent("a", Path("/nonexistent"), None, Periods(), CniMetrics(CollectorRegistry()), None)
    feeds = Feeds(Client(Credentials("https://192.0.2.1:6443")), "a", proxy, None, cni)
    assert [i.resource.plural for i in feeds.informers].count("nodes") == 1, "one Node watch for every side"
    assert feeds.nodes.resource.field_selector == ""
    feeds.nodes.handle("ADDED", B)
    assert not cni.listed.is_set(), "told of a Node before the listing ended"
    feeds.nodes.listed.set()
    feeds.nodes.handle("MODIFIED", node("b", "172.18.0.9", "10.244.1.0/24"))
    assert cni.listed.is_set() and not proxy.listed.is_set()


def test_without_the_proxy_no_service_or_slice_is_watched() -> None:
    cni = CniAgent("a", Path("/nonexistent"), None, Periods(), CniMetrics(CollectorRegistry()), None)
    feeds = Feeds(Client(Credentials("https://192.0.2.1:6443")), "a", None, None, cni)
    assert [i.resource.plural for i in feeds.informers] == ["nodes"]


def test_the_routes_reconcile_in_a_throwaway_network_namespace() -> None:
    """The netlink side for real: see ROUTES below (root, iproute2 and unshare)."""
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "ip")):
        pytest.skip("needs root, iproute2 and unshare")
    out = subprocess.run(["unshare", "--net", sys.executable, "-c", ROUTES], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr


# Runs in its own network namespace (gone when the process ends): a veth pair as the underlay, one foreign
# route, then reconciles as the agent does.
ROUTES = """
import subprocess
from operators.agent import routes
from operators.cni.routes import PROTO, Route

def ip(*args):
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout

ip("link", "add", "name", "under", "mtu", "1450", "type", "veth", "peer", "name", "other")
ip("link", "set", "under", "up"); ip("link", "set", "other", "up")
ip("addr", "add", "172.18.0.2/24", "dev", "under")
ip("-6", "addr", "add", "fc00::2/64", "dev", "under", "nodad")
ip("route", "add", "10.99.0.0/16", "via", "172.18.0.99", "proto", "static")  # someone else's

b4, b6, c4 = (Route("10.244.1.0/24", "172.18.0.3"), Route("fd00:10:244:1::/64", "fc00::3"),
              Route("10.244.2.0/24", "172.18.0.4"))
first = routes.reconcile({b4, b6, c4, Route("10.244.9.0/24", "192.0.2.1")})  # the last one is not on-link
assert set(first.added) == {b4, b6, c4} and first.unrouted == 1 and "192.0.2.1" in first.errors[0], first
assert routes.installed() == {b4, b6, c4}
assert "proto 75" in ip("route", "show", "10.244.1.0/24") and PROTO == 75

moved = Route("10.244.2.0/24", "172.18.0.5")  # node c's address changed; node b is gone
second = routes.reconcile({moved})
assert second.added == (moved,) and set(second.removed) == {b4, b6, c4} and not second.errors, second
assert routes.installed() == {moved} and "10.99.0.0/16 via 172.18.0.99" in ip("route")
assert routes.reconcile({moved}) == routes.Outcome()  # nothing to do

assert routes.link_mtu(["172.18.0.2"]) == 1450 and routes.link_mtu(["192.0.2.7"]) is None
assert routes.remove_all() == [] and routes.installed() == frozenset()
assert "10.99.0.0/16 via 172.18.0.99" in ip("route"), "a foreign route was removed"
print("ok")
"""
