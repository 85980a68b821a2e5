"""Which UDP conntrack entries the agent deletes when the model changes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from agent_builders import endpoint_slice, model, service

from operators.agent.conntrack import Flush, stale_flows


def test_a_removed_endpoint_loses_its_entries_on_every_frontend() -> None:
    svc = service(type="NodePort", externalIPs=["172.30.9.200"],
                  ports=[{"name": "p", "port": 53, "protocol": "UDP", "nodePort": 30053}])
    old = model(svc, endpoint_slice("dns", "10.244.2.5", "10.244.2.6"))
    new = model(svc, endpoint_slice("dns", "10.244.2.6"))
    assert stale_flows(old.ports, new.ports) == [
        Flush(4, "", 30053, "10.244.2.5", 53),
        Flush(4, "10.96.0.10", 53, "10.244.2.5", 53),
        Flush(4, "172.30.9.200", 53, "10.244.2.5", 53),
    ]


def test_a_frontend_that_gets_its_first_endpoint_is_flushed_whole() -> None:
    old = model(service())
    new = model(service(), endpoint_slice("dns", "10.244.2.5"))
    assert stale_flows(old.ports, new.ports) == [Flush(4, "10.96.0.10", 53)]
    # a Service that is new and comes with endpoints: packets sent before had no DNAT either
    assert stale_flows(model().ports, new.ports) == [Flush(4, "10.96.0.10", 53)]


def test_a_deleted_service_flushes_what_went_to_its_endpoints() -> None:
    old = model(service(), endpoint_slice("dns", "10.244.2.5"))
    assert stale_flows(old.ports, model().ports) == [Flush(4, "10.96.0.10", 53, "10.244.2.5", 53)]


def test_nothing_for_tcp_unchanged_models_or_the_first_sync() -> None:
    tcp = model(service(protocol="TCP"), endpoint_slice("dns", "10.244.2.5", protocol="TCP"))
    assert stale_flows(tcp.ports, model(service(protocol="TCP")).ports) == []
    udp = model(service(), endpoint_slice("dns", "10.244.2.5"))
    assert stale_flows(udp.ports, udp.ports) == []
    assert stale_flows(None, udp.ports) == []  # a previous agent's flows are left alone


def test_argv() -> None:
    assert Flush(4, "10.96.0.10", 53, "10.244.2.5", 5353).argv() == [
        "conntrack", "-D", "-f", "ipv4", "-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53",
        "--reply-src", "10.244.2.5", "--reply-port-src", "5353"]
    assert Flush(6, "", 30053).argv() == ["conntrack", "-D", "-f", "ipv6", "-p", "udp", "--orig-port-dst", "30053"]


def test_the_filters_delete_exactly_the_stale_kernel_entries() -> None:
    if os.geteuid() != 0 or not shutil.which("conntrack") or not shutil.which("unshare"):
        pytest.skip("needs root and conntrack")

    def entry(client_port: int, dst: str, dport: int, endpoint: str) -> str:
        return (f"conntrack -I -p udp -s 10.244.1.9 -d {dst} --sport {client_port} --dport {dport} "
                f"--reply-src {endpoint} --reply-dst 10.244.1.9 --reply-port-src 53 --reply-port-dst {client_port} "
                "-t 60 -u SEEN_REPLY")

    flushes = [Flush(4, "10.96.0.10", 53, "10.244.2.5", 53), Flush(4, "", 30053, "10.244.2.5", 53)]
    script = "\n".join([
        entry(4001, "10.96.0.10", 53, "10.244.2.5"),  # stale: to the gone endpoint via the ClusterIP
        entry(4002, "10.96.0.10", 53, "10.244.2.6"),  # live endpoint
        entry(4003, "172.30.9.11", 30053, "10.244.2.5"),  # stale: via the node port
        entry(4004, "10.96.0.11", 53, "10.244.2.5"),  # another Service's frontend
        *(" ".join(f.argv()) + " >/dev/null || true" for f in flushes),
        "conntrack -L -p udp",
    ])
    out = subprocess.run(["unshare", "--net", "sh", "-ec", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert sorted(re.findall(r"sport=(\d+) dport=(?:53|30053) src", out.stdout)) == ["4002", "4004"]
