"""One Node informer feeds every side of the agent: the proxy, NetworkPolicy (its own Node alone), CNI mode
and the node report's LoadBalancer election."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from operators.agent import config, status
from operators.agent.cni import CniAgent
from operators.agent.cni_metrics import CniMetrics
from operators.agent.metrics import Metrics
from operators.agent.netpol import NetpolAgent
from operators.agent.netpol_metrics import NetpolMetrics
from operators.agent.operator import Feeds
from operators.agent.proxy import ProxyAgent
from operators.kube.client import Client
from operators.proxy.model import ProxyConfig
from operators.runtime.login import Credentials
from operators.runtime.schedule import Periods


def node(name: str, ip: str, ready: bool = True, heartbeat: str = "t0") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": f"uid-{name}"},
            "spec": {"podCIDRs": ["10.244.0.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}], "conditions": [
                {"type": "Ready", "status": str(ready), "lastHeartbeatTime": heartbeat}]}}


def every_side() -> tuple[Feeds, ProxyAgent, NetpolAgent, status.NodeReporter]:
    metrics = Metrics()
    proxy = ProxyAgent("a", ProxyConfig(), Periods(), metrics, None)
    netpol = NetpolAgent("a", Periods(), NetpolMetrics(metrics.registry), None)
    cni = CniAgent("a", Path("/nonexistent"), None, Periods(), CniMetrics(CollectorRegistry()), None)
    reporter = status.NodeReporter(proxy, config.Settings(None, Periods()), None, None)
    feeds = Feeds(Client(Credentials("https://192.0.2.1:6443")), "a", proxy, netpol, cni, reporter)
    for i in feeds.informers:
        i.listed.set()
    feeds.listed = True
    return feeds, proxy, netpol, reporter


def test_one_node_watch_serves_every_side() -> None:
    feeds, *_ = every_side()
    assert [i.resource.plural for i in feeds.informers].count("nodes") == 1
    assert feeds.nodes.resource.field_selector == ""  # every Node: the proxy and CNI mode need the peers


def test_network_policy_hears_of_its_own_node_alone() -> None:
    feeds, proxy, netpol, _ = every_side()
    feeds.nodes.handle("ADDED", node("b", "172.18.0.3"))
    assert proxy.state.dirty_since is not None and netpol.state.dirty_since is None
    feeds.nodes.handle("ADDED", node("a", "172.18.0.2"))
    assert netpol.state.dirty_since is not None


def test_the_election_hears_of_readiness_not_of_heartbeats() -> None:
    feeds, _, _, reporter = every_side()
    feeds.nodes.handle("ADDED", node("b", "172.18.0.3"))
    assert reporter.wake.is_set() and [p.name for p in reporter.peers] == ["b"]
    reporter.wake.clear()
    feeds.nodes.handle("MODIFIED", node("b", "172.18.0.3", heartbeat="t1"))
    assert not reporter.wake.is_set()
    feeds.nodes.handle("MODIFIED", node("b", "172.18.0.3", ready=False))
    assert reporter.wake.is_set() and not next(iter(reporter.peers)).eligible
