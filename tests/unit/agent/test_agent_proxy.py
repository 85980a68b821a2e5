"""The sync loop with a fake kernel and API: full, incremental or nothing; failures; conntrack; Events."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from agent_builders import NODE, NODE_NAME, Recorder, endpoint_slice, service

from operators.agent import dataplane
from operators.agent.metrics import Metrics
from operators.agent.proxy import ProxyAgent
from operators.agent.store import ProxyStore, node_entry
from operators.proxy.model import ProxyConfig
from operators.proxy.nftables import SHARDS, TABLE, shard_name
from operators.runtime.schedule import Periods


class Kernel:
    """Stands in for nft and conntrack: records transactions, can fail them or lose the table."""

    def __init__(self) -> None:
        self.transactions: list[str] = []
        self.flushes: list[list[str]] = []
        self.fail = False
        self.table = False

    async def table_names(self) -> set[str]:
        return {TABLE, *map(shard_name, range(SHARDS))} if self.table else set()

    async def nft_apply(self, text: str) -> tuple[bool, str]:
        if self.fail:
            return False, "Error: Could not process rule"
        self.transactions.append(text)
        self.table = True
        return True, ""

    def stream(self) -> Stream:
        return Stream(self)

    async def ipt_save(self, family: int) -> tuple[dict, str]:
        return {}, ""  # no iptables rules: the start-up cleanup of the other mode has nothing to do

    async def ipt_restore(self, family: int, text: str) -> tuple[bool, str]:
        raise AssertionError(f"nftables mode wrote iptables rules: {text}")

    async def conntrack_delete(self, flush: Any) -> tuple[bool, str]:
        self.flushes.append(flush.argv())
        return True, ""


class Stream:
    """Stands in for `dataplane.NftStream`: what it is given becomes one transaction of the kernel's."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel, self.pieces = kernel, []

    def write(self, text: str) -> None:
        self.pieces.append(text)

    def abort(self) -> None:
        self.pieces = []

    async def finish(self) -> tuple[bool, str]:
        return await self.kernel.nft_apply("".join(self.pieces))


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Kernel:
    k = Kernel()
    for name in ("table_names", "nft_apply", "ipt_save", "ipt_restore", "conntrack_delete"):
        monkeypatch.setattr(dataplane, name, getattr(k, name))
    monkeypatch.setattr(dataplane, "NftStream", k.stream)
    return k


class Cluster:
    """The agent's store, fed as the informers feed it, that tests edit."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.store = ProxyStore([node_entry(NODE)])
        for o in objects:
            (self.store.services if o["kind"] == "Service" else self.store.slices).handle("ADDED", o)

    def set_slices(self, *objects: dict[str, Any]) -> None:
        """The slices now are these (by uid): the others are deleted."""
        new = {o["metadata"]["uid"]: o for o in objects}
        for uid, e in list(self.store.slices.entries.items()):
            if uid not in new:
                self.store.slices.handle("DELETED", {"metadata": {"uid": uid, "namespace": e.ref.namespace,
                                                                  "name": e.ref.name}})
        for uid, o in new.items():
            self.store.slices.handle("MODIFIED" if uid in self.store.slices.entries else "ADDED", o)


def make_agent(cluster: Cluster, recorder: Recorder | None = None) -> ProxyAgent:
    agent = ProxyAgent(NODE_NAME, ProxyConfig(), Periods(min=0, max=10, full=3600), Metrics(), recorder)
    agent.attach(cluster.store)
    return agent


def metric(agent: ProxyAgent, name: str, **labels: str) -> float:
    return agent.metrics.registry.get_sample_value(name, labels) or 0.0


def test_syncs_are_full_then_incremental_or_nothing(kernel: Kernel) -> None:
    cluster = Cluster(service(), endpoint_slice("dns", "10.244.2.5"))
    agent = make_agent(cluster)

    async def scenario() -> None:
        await agent.sync(100)
        assert agent.state.synced and len(kernel.transactions) == 1
        main = "add table inet knet-proxy\ndelete table inet knet-proxy\ntable inet knet-proxy {"
        assert main in kernel.transactions[0]
        agent.changed()  # e.g. a Service's annotation changed: nothing to program
        await agent.sync(101)
        assert len(kernel.transactions) == 1
        cluster.set_slices(endpoint_slice("dns", "10.244.2.5", "10.244.2.6"))
        agent.changed()
        await agent.sync(102)
        assert len(kernel.transactions) == 2 and "delete table" not in kernel.transactions[1]
        assert "10.244.2.6" in kernel.transactions[1]

    asyncio.run(scenario())
    assert metric(agent, "knet_proxy_sync_proxy_rules_duration_seconds_count", kind="full") == 1
    assert metric(agent, "knet_proxy_sync_proxy_rules_duration_seconds_count", kind="incremental") == 1
    assert metric(agent, "knet_proxy_services") == 1
    assert metric(agent, "knet_proxy_endpoints") == 2


def test_a_failed_transaction_keeps_the_last_model_and_the_next_sync_is_full(kernel: Kernel) -> None:
    cluster = Cluster(service(), endpoint_slice("dns", "10.244.2.5"))
    agent = make_agent(cluster)

    async def scenario() -> None:
        await agent.sync(100)
        before = agent.applied
        cluster.set_slices(endpoint_slice("dns", "10.244.2.6"))
        agent.changed()
        kernel.fail = True
        await agent.sync(101)
        assert agent.applied is before and agent.state.failures == 1
        assert kernel.flushes == []  # nothing changed in the kernel, so no conntrack cleanup either
        kernel.fail = False
        await agent.sync(102)
        assert kernel.transactions[-1].startswith("add table")  # full after a failure
        assert agent.state.failures == 0 and agent.applied is not before

    asyncio.run(scenario())
    assert metric(agent, "knet_proxy_errors_total", kind="nft") == 1


def test_a_periodic_check_without_changes_builds_nothing(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = make_agent(Cluster(service()))
    asyncio.run(agent.sync(100))
    monkeypatch.setattr("operators.agent.proxy.build_model", None)  # would fail if it were called
    asyncio.run(agent.sync(110))
    assert len(kernel.transactions) == 1 and agent.state.last_start == 110 and agent.status().ready


def test_a_table_removed_by_someone_else_is_restored_in_full(kernel: Kernel) -> None:
    agent = make_agent(Cluster(service()))

    async def scenario() -> None:
        await agent.sync(100)
        kernel.table = False
        await agent.sync(110)

    asyncio.run(scenario())
    assert len(kernel.transactions) == 2 and kernel.transactions[1].startswith("add table")
    assert metric(agent, "knet_proxy_errors_total", kind="table-missing") == 1


def test_stale_udp_entries_are_deleted_after_the_rules_changed(kernel: Kernel) -> None:
    cluster = Cluster(service(), endpoint_slice("dns", "10.244.2.5", "10.244.2.6"))
    agent = make_agent(cluster)

    async def scenario() -> None:
        await agent.sync(100)
        cluster.set_slices(endpoint_slice("dns", "10.244.2.6"))
        agent.changed()
        await agent.sync(101)

    asyncio.run(scenario())
    assert kernel.flushes == [["conntrack", "-D", "-f", "ipv4", "-p", "udp", "--orig-dst", "10.96.0.10",
                               "--orig-port-dst", "53", "--reply-src", "10.244.2.5", "--reply-port-src", "53"]]


def test_problems_get_one_event_each_and_failed_posts_are_retried(kernel: Kernel) -> None:
    recorder = Recorder()
    bad = service("bad", ports=[{"name": "p", "port": 53, "protocol": "ICMP"}])
    agent = make_agent(Cluster(service(), bad), recorder)

    async def scenario() -> None:
        recorder.fail = True
        await agent.sync(100)
        recorder.fail = False
        await agent.sync(101)
        await agent.sync(102)

    asyncio.run(scenario())
    assert [(ref.name, ref.uid, reason) for ref, reason, _ in recorder.posted] == [("bad", "uid-bad", "ProxyProblem")]
    assert kernel.transactions  # the good Service was programmed regardless
    assert metric(agent, "knet_proxy_object_problems_total", kind="Service") == 1
    assert metric(agent, "knet_proxy_objects_with_problems", kind="Service") == 1
    assert metric(agent, "knet_proxy_errors_total", kind="event") == 1


def test_programming_latency_from_the_slice_trigger_time(kernel: Kernel) -> None:
    agent = make_agent(Cluster(service()))
    agent.started -= 10

    first, second = time.time() - 0.5, time.time() - 0.4

    async def scenario() -> None:
        agent.slice_changed("uid-1", first)
        agent.slice_changed("uid-1", second)
        agent.slice_changed("uid-2", agent.started - 1)  # listed at start: changed before the agent ran
        await agent.sync(100)
        agent.slice_changed("uid-1", second)  # the same slice again, same change
        await agent.sync(101)

    asyncio.run(scenario())
    assert metric(agent, "knet_proxy_network_programming_duration_seconds_count") == 2
    assert metric(agent, "knet_proxy_network_programming_duration_seconds_sum") >= 0.9
    assert agent.seen_triggers == {"uid-1": second}


def test_the_loop_waits_for_the_watches_to_list_everything(kernel: Kernel) -> None:
    agent = make_agent(Cluster(service()))

    async def scenario() -> None:
        loop = asyncio.create_task(agent.run())
        await asyncio.sleep(0.1)
        assert kernel.transactions == [] and not agent.status().ready
        agent.changed()
        for _ in range(50):
            await asyncio.sleep(0.02)
            if agent.status().ready:
                break
        loop.cancel()
        await agent.stop()

    asyncio.run(scenario())
    assert len(kernel.transactions) == 1 and agent.status().healthy and agent.status().node_eligible
