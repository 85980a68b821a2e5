"""The agent's pure NetworkPolicy helpers: strict-mode flow judgement and problem texts for Events."""

from __future__ import annotations

from operators.agent.netpol import policy_entry
from operators.agent.netpol_conntrack import Flow, disallowed, parse_flows
from operators.kube.parse import Problem
from operators.kube.pods import namespace, parse_pod
from operators.netpol.compiler import compile_node
from operators.netpol.policy import parse_policy

LISTING = "\n".join([
    "tcp      6 431999 ESTABLISHED src=10.0.1.5 dst=10.96.0.10 sport=40000 dport=80 "
    "src=10.0.0.2 dst=10.0.1.5 sport=8080 dport=40000 [ASSURED] mark=0 use=1",
    "udp      17 29 src=10.0.1.6 dst=10.0.0.2 sport=5000 dport=53 src=10.0.0.2 dst=10.0.1.6 sport=53 dport=5000 use=1",
    "icmp     1 29 src=10.0.1.5 dst=10.0.0.2 type=8 code=0 id=1 src=10.0.0.2 dst=10.0.1.5 type=0 code=0 id=1 use=1",
    "tcp      6 118 TIME_WAIT src=10.0.1.5 dst=10.96.0.10 sport=40001 dport=80 "
    "src=10.0.0.2 dst=10.0.1.5 sport=8080 dport=40001 [ASSURED] mark=0 use=1",
])


def pod(name: str, ip: str, node: str, labels: dict[str, str]) -> object:
    return parse_pod({"metadata": {"namespace": "x", "name": name, "labels": labels},
                      "spec": {"nodeName": node}, "status": {"phase": "Running", "podIP": ip}})[0]


def test_parse_flows_reads_the_reply_side_and_skips_other_protocols_and_closed_connections() -> None:
    flows = parse_flows(LISTING)
    assert flows == [Flow("TCP", "10.0.1.5", "10.96.0.10", 40000, 80, "10.0.0.2", 8080),
                     Flow("UDP", "10.0.1.6", "10.0.0.2", 5000, 53, "10.0.0.2", 53)]
    assert flows[0].argv()[-8:] == ["--orig-src", "10.0.1.5", "--orig-dst", "10.96.0.10", "--orig-port-src",
                                    "40000", "--orig-port-dst", "80"]


def test_disallowed_judges_flows_after_dnat() -> None:
    """The server (local) allows only pod=client on 8080: the Service flow from the client stays, the
    one from the other pod goes; flows from the node's own address are never cut."""
    server = pod("server", "10.0.0.2", "n1", {"app": "server"})
    client = pod("client", "10.0.1.5", "n2", {"role": "client"})
    other = pod("other", "10.0.1.6", "n2", {})
    policy = parse_policy({"metadata": {"namespace": "x", "name": "p"}, "spec": {
        "podSelector": {"matchLabels": {"app": "server"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"port": 8080}]}]}})[0]
    assert policy is not None
    model = compile_node([policy], [server, client, other], [namespace("x")], "n1")
    flows = parse_flows(LISTING)
    from_node = Flow("UDP", "172.18.0.2", "10.0.0.2", 5001, 53, "10.0.0.2", 53)
    assert disallowed([*flows, from_node], model, ["172.18.0.2"]) == [flows[1]]


def test_problems_name_the_policy() -> None:
    entry = policy_entry({"metadata": {"namespace": "x", "name": "p", "uid": "u"}, "spec": {
        "podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "010.0.0.0/8"}}]}]}})
    assert entry.view is not None and entry.ref.kind == "NetworkPolicy"
    assert entry.problems == (Problem("NetworkPolicy", "x", "p",
                                      "spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR '010.0.0.0/8'"),)
