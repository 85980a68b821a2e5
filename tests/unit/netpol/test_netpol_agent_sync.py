"""The agent's sync loop without a kernel: the drop counters reach the metrics on every sync.

An Event that cannot be posted (its namespace being deleted, say) makes every sync rebuild the model;
such a sync finds nothing to apply, and it must still read the counters (it once did not, and the drop
metrics of every policy stood still while one Event kept failing)."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import CollectorRegistry

from operators.agent import netpol as agent_netpol
from operators.agent.config import PolicyOptions
from operators.agent.netpol import NetpolAgent, namespace_entry, pod_entry, policy_entry
from operators.agent.netpol_metrics import NetpolMetrics
from operators.netpol.nftables import counter_names
from operators.runtime.schedule import Periods

PERIODS = Periods(min=0.0, max=0.0, full=3600.0)


class FailingEvents:
    """Every post fails, as for a namespace that is being deleted."""

    async def post(self, ref: object, reason: str, message: str) -> bool:
        return False


def objects() -> tuple[dict, dict, dict]:
    pod = {"metadata": {"namespace": "x", "name": "a", "labels": {"pod": "a"}},
           "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
           "status": {"phase": "Running", "podIP": "10.0.0.2"}}
    # a named port no pod declares: a problem, so an Event to post
    policy = {"metadata": {"namespace": "x", "name": "deny-a", "uid": "u"}, "spec": {
        "podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": "nosuch"}]}]}}
    return pod, policy, {"metadata": {"name": "x"}}


def fake_kernel(monkeypatch: pytest.MonkeyPatch, output) -> list[str]:
    """nft stood in for: the texts applied, in order; `output` answers `nft -j list counters`."""
    applied: list[str] = []

    async def present(_table: str) -> bool:
        return bool(applied)

    async def apply(text: str) -> tuple[bool, str]:
        applied.append(text)
        return True, ""

    monkeypatch.setattr(agent_netpol.dataplane, "table_present", present)
    monkeypatch.setattr(agent_netpol.dataplane, "nft_apply", apply)
    monkeypatch.setattr(agent_netpol, "_output", output)
    return applied


def test_counters_are_read_when_a_sync_has_nothing_to_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    pod, policy, ns = objects()
    drops = {"packets": 0}

    async def output(argv: list[str]) -> tuple[int, str, str]:
        assert argv[:4] == ["nft", "-j", "list", "counters"]
        names = counter_names(policy_entry(policy).view.ref.id)  # type: ignore[union-attr]
        items = [{"counter": {"name": n, "packets": drops["packets"] if n.endswith("-drop") else 0}} for n in names]
        return 0, json.dumps({"nftables": items}), ""

    applied = fake_kernel(monkeypatch, output)
    registry = CollectorRegistry()
    metrics = NetpolMetrics(registry)
    agent = NetpolAgent("n1", PERIODS, metrics, FailingEvents())  # type: ignore[arg-type]
    agent.attach([policy_entry(policy)], [pod_entry(pod)], [namespace_entry(ns)], [])
    agent.configure(PolicyOptions(drop_logging=True), PERIODS)

    async def run() -> None:
        agent.changed()
        await agent.sync(1.0)  # the first, full sync: the table with the policy's counters
        assert len(applied) == 1 and agent.retry_reports  # the Event could not be posted
        drops["packets"] = 7  # the kernel drops packets
        await agent.sync(2.0)  # nothing changed but the Event to retry: no transaction
        assert len(applied) == 1

    asyncio.run(run())
    labels = {"namespace": "x", "policy": "deny-a"}
    assert registry.get_sample_value("knet_netpol_policy_drops_total", labels) == 7


def applied_with(policies: list[dict], monkeypatch: pytest.MonkeyPatch) -> str:
    """The ruleset the agent applies on node n1 (podCIDR 10.0.0.0/24) with these policies."""
    from operators.agent import store

    pod, _, ns = objects()
    node = {"metadata": {"name": "n1", "uid": "n"}, "spec": {"podCIDRs": ["10.0.0.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}

    async def output(argv: list[str]) -> tuple[int, str, str]:
        return 0, json.dumps({"nftables": []}), ""

    applied = fake_kernel(monkeypatch, output)
    agent = NetpolAgent("n1", PERIODS, NetpolMetrics(CollectorRegistry()), FailingEvents())  # type: ignore[arg-type]
    agent.attach([policy_entry(p) for p in policies], [pod_entry(pod)], [namespace_entry(ns)],
                 [store.node_entry(node)])
    agent.changed()
    asyncio.run(agent.sync(1.0))
    return applied[-1]


def test_new_pods_are_cut_off_until_programmed_only_while_some_policy_exists(monkeypatch):
    _, policy, _ = objects()
    assert "local pod not yet programmed" not in applied_with([], monkeypatch)
    assert "local pod not yet programmed" in applied_with([policy], monkeypatch)
