"""The cluster-mode shell: what Kopf's handlers do to the store and server, and which watches exist."""

from __future__ import annotations

import kopf
import pytest
from dns_builders import ask, service

from operators.dns import cli, watch
from operators.dns.config import DNSConfig, Server
from operators.dns.records import RecordStore
from operators.dns.server import DNSServer
from operators.runtime.login import Credentials


def feed() -> watch.Feed:
    return watch.Feed(DNSServer(RecordStore(DNSConfig()), resolvers=[]))


def test_objects_come_and_go_incrementally() -> None:
    f = feed()
    f.handle("ADDED", service("web", "shop", ("10.96.3.4",)))
    assert ask(f.store, "web.shop.svc.cluster.local")[:2] == ("NOERROR", ["10.96.3.4"])
    f.handle("MODIFIED", service("web", "shop", ("10.96.3.5",)))
    assert ask(f.store, "web.shop.svc.cluster.local")[:2] == ("NOERROR", ["10.96.3.5"])
    f.handle("DELETED", service("web", "shop", ("10.96.3.5",)))
    assert ask(f.store, "web.shop.svc.cluster.local")[0] == "NXDOMAIN"


def test_ready_only_after_the_first_event() -> None:
    f = feed()
    assert not f.store.synced
    f.synced()
    assert f.store.synced


def test_dnsconfig_reconfigures_and_its_deletion_restores_defaults() -> None:
    f = feed()
    f.dnsconfig(kopf.Body({"apiVersion": "knet.io/v1alpha1", "kind": "DNSConfig", "metadata": {"name": "default"},
                           "spec": {"clusterDomain": "corp.example"}}))
    assert f.server.config.zones[0] == "corp.example"
    f.dnsconfig(None)
    assert f.server.config.zones == ("cluster.local",)


def test_kopf_watches_only_the_dnsconfig_without_writing_to_it() -> None:
    """The record store's four kinds come through informers (`watch.WATCHED`); Kopf keeps the DNSConfig."""
    registry = watch.build_registry(feed(), Credentials("https://192.0.2.1:6443"))
    assert {h.selector.any_name for h in registry._indexing.get_all_handlers()} == {"dnsconfigs"}
    assert {h.selector.any_name for h in registry._watching.get_all_handlers()} == {"dnsconfigs"}
    assert not registry._changing.get_all_handlers()  # no on.create/update: Kopf adds no finalizers
    assert {r.plural for r in watch.WATCHED} == {"namespaces", "services", "endpointslices", "pods"}


def test_cli_rejects_a_bad_listen_address(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["dns", "--listen", "nowhere"])
    assert args.func(args) == 2
    assert "error" in capsys.readouterr().err


def test_ns_dns_names_our_own_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_IP", "10.244.1.7")
    assert cli.nameservers(["10.96.0.10"], "0.0.0.0:53") == ("10.96.0.10",)
    assert cli.nameservers([], "172.30.1.11:53") == ("172.30.1.11",)
    assert cli.nameservers([], "0.0.0.0:53") == ("10.244.1.7",)
    monkeypatch.delenv("POD_IP")
    assert cli.nameservers([], "0.0.0.0:53") == ()


def test_ports_from_the_charts_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KNET_DNS_PORT", *cli.HTTP_PORT_ENV):
        monkeypatch.delenv(name, raising=False)
    assert (cli.cluster_listen(), cli.cluster_http()) == ("0.0.0.0:53", ["0.0.0.0:8080"])
    for name, port in zip(("KNET_DNS_PORT", *cli.HTTP_PORT_ENV), ("5353", "8080", "8181", "8080"), strict=True):
        monkeypatch.setenv(name, port)
    assert (cli.cluster_listen(), cli.cluster_http()) == ("0.0.0.0:5353", ["0.0.0.0:8080", "0.0.0.0:8181"])


def test_node_local_mode_forwards_everything_outside_the_zones_to_the_cluster_dns() -> None:
    """The DNSConfig's upstreams and stub domains belong to the cluster DNS; the node-local cache only
    forwards there, whatever the DNSConfig says, and keeps its zones, TTL and hosts."""
    cluster_dns = (Server("10.96.0.10"),)
    f = watch.Feed(DNSServer(RecordStore(DNSConfig()), resolvers=[]), forward_to=cluster_dns)
    f.dnsconfig(kopf.Body({"metadata": {"name": "default"}, "spec": {
        "ttl": 7, "upstream": {"servers": ["192.0.2.1"]},
        "stubDomains": [{"domain": "corp.example", "servers": ["192.0.2.2"]}]}}))
    config = f.server.config
    assert (config.ttl, config.upstream.servers, config.stub_domains) == (7, cluster_dns, ())
    assert f.server.forwarder.servers_for("www.corp.example") == cluster_dns


def test_node_local_needs_a_forward_target(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["dns", "--node-local", "169.254.20.10"])
    assert args.func(args) == 2
    assert "--forward-to" in capsys.readouterr().err
