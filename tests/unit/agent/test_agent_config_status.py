"""ClusterNetworkConfig parsing, the LoadBalancer election and the NodeNetworkStatus body (pure parts)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator

import pytest
from agent_builders import NODE, NODE_NAME, endpoint_slice, model, service

from operators.agent import announce, config, status
from operators.agent.metrics import Metrics
from operators.agent.proxy import ProxyAgent
from operators.agent.store import ProxyStore, node_entry
from operators.kube.client import ApiError, Client
from operators.kube.informer import Index
from operators.kube.services import EndpointSlice, parse_endpoint_slice
from operators.proxy.model import ProxyConfig
from operators.runtime.login import Credentials
from operators.runtime.schedule import Periods


def test_config_fields_override_the_file_and_bad_values_keep_the_base() -> None:
    cfg = config.parse({"metadata": {"generation": 3}, "spec": {
        "clusterCIDRs": ["10.200.0.0/16"], "proxy": {"mode": "iptables", "masqueradeAll": True,
                                                      "nodePortAddresses": ["primary"], "minSyncPeriod": "250ms",
                                                      "syncPeriod": "1m30s"},
        "networkPolicy": {"strictMode": True}}}, base={"masqueradeAll": False, "serviceCIDRs": ["10.97.0.0/16"]},
        periods=Periods(1, 10, 3600))
    assert cfg.proxy.mode == "iptables" and cfg.proxy.masquerade_all and cfg.proxy.node_port_addresses == ("primary",)
    assert cfg.proxy.cluster_cidrs == ("10.200.0.0/16",) and cfg.proxy.service_cidrs == ("10.97.0.0/16",)
    assert cfg.periods == Periods(0.25, 90, 3600) and cfg.policy == config.PolicyOptions(strict_mode=True)
    assert cfg.generation == 3 and cfg.problems == ()
    bad = config.parse({"spec": {"proxy": {"mode": "ipvs", "syncPeriod": "soon", "minSyncPeriod": "2h"}}},
                       periods=Periods(1, 10, 3600))
    assert bad.proxy.mode == "nftables" and bad.periods == Periods(1, 10, 3600)
    assert [p.message.split()[0] for p in bad.problems] == ["mode", "spec.proxy.syncPeriod", "sync"]
    assert config.parse(None) == config.AgentConfig()


def test_settings_tell_listeners_only_of_changes() -> None:
    seen: list[str] = []
    settings = config.Settings(None, Periods())
    settings.listen(lambda c: seen.append(c.proxy.mode))
    settings.update({"spec": {"proxy": {"mode": "iptables"}}})
    settings.update({"spec": {"proxy": {"mode": "iptables"}}})
    settings.update(None)
    assert seen == ["nftables", "iptables", "nftables"]


def test_one_node_answers_for_each_lb_address_and_local_policy_needs_an_endpoint() -> None:
    peers = [announce.Peer("node-a", True), announce.Peer("node-b", True), announce.Peer("node-c", False)]
    ips = [f"172.30.9.{i}" for i in range(130, 150)]
    owners = {ip: announce.owner(ip, [p.name for p in peers if p.eligible]) for ip in ips}
    assert set(owners.values()) == {"node-a", "node-b"}, "addresses spread over the eligible nodes"
    lb = {"type": "LoadBalancer", "ports": [{"name": "p", "port": 53, "protocol": "UDP", "targetPort": 53,
                                             "nodePort": 30053}]}
    svc = service(**lb) | {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}
    slice_ = endpoint_slice("dns", "10.244.2.5")  # its endpoint is on node-b
    m = model(svc, slice_)
    slices = [parse_endpoint_slice(slice_)[0]]
    mine = announce.announced(m, peers, slices)
    assert m.node == NODE_NAME == "node-a" and set(mine) == {ip for ip, n in owners.items() if n == "node-a"}
    local = model(svc | {"spec": svc["spec"] | {"externalTrafficPolicy": "Local"}}, slice_)
    assert announce.announced(local, peers, slices) == (), "no local endpoint on node-a: node-b answers"
    body = {"metadata": {"name": "n", "labels": {announce.EXCLUDE_LABEL: ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert announce.peer_of(body) == announce.Peer("n", False)


def test_the_election_reads_endpoint_slices_only_for_local_services_with_addresses() -> None:
    """The reporter elects once a second while the model changes: a pass over every slice cost ~0.1 s at 30k."""

    def unread() -> Iterator[EndpointSlice]:
        raise AssertionError("the slices were read")
        yield

    peers = [announce.Peer("node-a", True)]
    lb = {"type": "LoadBalancer", "ports": [{"name": "p", "port": 53, "protocol": "UDP", "targetPort": 53,
                                             "nodePort": 30053}]}
    svc = service(**lb) | {"status": {"loadBalancer": {"ingress": [{"ip": "172.30.9.130"}]}}}
    slice_ = endpoint_slice("dns", "10.244.1.5")
    slice_["endpoints"][0]["nodeName"] = NODE_NAME
    assert announce.announced(model(service(), slice_), peers, unread()) == ()
    assert announce.announced(model(svc, slice_), peers, unread()) == ("172.30.9.130",)
    local = model(svc | {"spec": svc["spec"] | {"externalTrafficPolicy": "Local"}}, slice_)
    with pytest.raises(AssertionError, match="were read"):
        announce.announced(local, peers, unread())
    other = parse_endpoint_slice(slice_ | {"metadata": {"name": "dns-1", "namespace": "elsewhere", "labels": {
        "kubernetes.io/service-name": "dns"}}})[0]
    assert announce.announced(local, peers, [other]) == (), "another namespace's slice does not count"
    assert announce.announced(local, peers, [other, parse_endpoint_slice(slice_)[0]]) == ("172.30.9.130",)


def test_status_body_counts_conditions_and_keeps_transition_times() -> None:
    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    report = status.Report(mode="iptables", generation=2, synced=True, healthy=True, failing=True, services=3,
                           endpoints=7, rules=40, last_sync=t0, last_full=t0 + datetime.timedelta(seconds=1),
                           duration=0.0125, failures=1, errors=((t0, "iptables transaction failed: busy"),),
                           problems=())
    body = status.status_body(report, [], t0)
    assert body["counts"] == {"services": 3, "endpoints": 7, "rules": 40} and body["proxyMode"] == "iptables"
    assert body["lastSyncDuration"] == "12.5ms" and body["lastFullSyncTime"] <= body["lastSyncTime"]
    cond = {c["type"]: c for c in body["conditions"]}
    assert cond["Ready"]["status"] == "True" and cond["RulesApplied"]["status"] == "False"
    assert cond["RulesApplied"]["message"] == "iptables transaction failed: busy"
    later = status.status_body(report, body["conditions"], t0 + datetime.timedelta(minutes=1))
    assert later["conditions"] == body["conditions"]


def test_the_reporter_writes_the_status_owned_by_the_node_from_the_informer_index() -> None:
    """The report step finds our Node's uid in the agent's own-node index (an informer `Index`)."""
    agent = ProxyAgent(NODE_NAME, ProxyConfig(), Periods(0, 10, 3600), Metrics(), None)
    nodes = Index(node_entry)
    nodes.handle("ADDED", NODE)
    agent.attach(ProxyStore(nodes))
    written: list[tuple[str, dict]] = []

    class Writer:
        async def write(self, report: status.Report, node_uid: str) -> None:
            written.append((node_uid, status.status_body(report, [], datetime.datetime.now(datetime.UTC))))

    reporter = status.NodeReporter(agent, config.Settings(None, Periods()), Writer(), None)  # type: ignore[arg-type]
    asyncio.run(reporter.step())
    assert [uid for uid, _ in written] == [NODE["metadata"]["uid"]]
    assert written[0][1]["counts"] == {"services": 0, "endpoints": 0, "rules": 0}


def test_a_failed_status_write_waits_before_it_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the CRD every write fails: one attempt per RETRY, not one per report step."""
    writer = status.StatusWriter(Client(Credentials("https://192.0.2.1:6443")), NODE_NAME)
    attempts: list[dict] = []

    async def fail(body: dict, _uid: str) -> None:
        attempts.append(body)
        raise ApiError(404, "Not Found")

    monkeypatch.setattr(writer, "_write", fail)
    report = status.report_of(ProxyAgent(NODE_NAME, ProxyConfig(), Periods(), Metrics(), None), 1)
    asyncio.run(writer.write(report, "uid"))
    asyncio.run(writer.write(report, "uid"))
    assert len(attempts) == 1 and writer.written is None
    monkeypatch.setattr(status.time, "monotonic", lambda: writer.failed_at + status.RETRY)
    asyncio.run(writer.write(report, "uid"))
    assert len(attempts) == 2
