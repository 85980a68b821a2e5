"""The node runtime's pure parts: resolv.conf, hosts, env, `$(VAR)` expansion and pod phase."""

from __future__ import annotations

import pytest

from operators.devcluster import podspec
from operators.devcluster.podspec import ConfigError, CState


def pod(**spec: object) -> dict:
    return {
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "serviceAccountName": "sa", **spec},
        "status": {"podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}], "hostIP": "172.30.0.11"},
    }


NODE_RESOLV = "nameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n"


def test_cluster_first_uses_cluster_dns_and_search_path() -> None:
    text = podspec.resolv_conf(pod(), NODE_RESOLV, "10.96.0.10", "cluster.local")
    search = "search shop.svc.cluster.local svc.cluster.local cluster.local"
    assert text == f"nameserver 10.96.0.10\n{search}\noptions ndots:5\n"


def test_host_network_cluster_first_falls_back_to_node_resolver() -> None:
    text = podspec.resolv_conf(pod(hostNetwork=True), NODE_RESOLV, "10.96.0.10", "cluster.local")
    assert text.splitlines()[0] == "nameserver 192.0.2.53"
    with_host_net = podspec.resolv_conf(
        pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), NODE_RESOLV, "10.96.0.10", "cluster.local"
    )
    assert with_host_net.startswith("nameserver 10.96.0.10\n")


def test_dns_none_with_dns_config_overrides_options() -> None:
    p = pod(
        dnsPolicy="None",
        dnsConfig={
            "nameservers": ["1.2.3.4"],
            "searches": ["a.b"],
            "options": [{"name": "ndots", "value": "2"}],
        },
    )
    assert podspec.resolv_conf(p, NODE_RESOLV, "10.96.0.10", "cluster.local") == (
        "nameserver 1.2.3.4\nsearch a.b\noptions ndots:2\n"
    )


def test_hosts_file_names_pod_with_subdomain_fqdn() -> None:
    text = podspec.hosts_file(pod(hostname="h", subdomain="sub"), ["10.244.1.5"], "cluster.local")
    assert "10.244.1.5\th.sub.shop.svc.cluster.local\th" in text.splitlines()


def test_env_downward_api_refs_and_expansion() -> None:
    data = {"cm": {"k": "from-cm"}, "sec": {"pw": "s3cret"}}

    def lookup(kind: str, name: str) -> dict | None:
        return data.get(name)

    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
            {"name": "URL", "value": "http://$(IP):80/$(MISSING)/$$(IP)"},
        ],
    }
    env = podspec.container_env(pod(), container, lookup, {"PATH": "/bin"})
    assert env["POD"] == "web-1" and env["IP"] == "10.244.1.5" and env["NODE"] == "n1"
    assert env["HOST_IP"] == "172.30.0.11" and env["APP"] == "web" and env["PW"] == "s3cret"
    assert env["CM_k"] == "from-cm" and env["PATH"] == "/bin"
    assert env["URL"] == "http://10.244.1.5:80/$(MISSING)/$(IP)"


def test_missing_config_map_is_a_config_error_unless_optional() -> None:
    container = {
        "name": "c",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}],
    }
    with pytest.raises(ConfigError, match='configmap "nope" not found'):
        podspec.container_env(pod(), container, lambda k, n: None, {})
    container["env"][0]["valueFrom"]["configMapKeyRef"]["optional"] = True
    assert "X" not in podspec.container_env(pod(), container, lambda k, n: None, {})


@pytest.mark.parametrize(
    ("policy", "states", "expected"),
    [
        ("Always", [("running", 0, 0)], "Running"),
        ("Never", [("terminated", 0, 0)], "Succeeded"),
        ("Never", [("terminated", 1, 0)], "Failed"),
        ("OnFailure", [("terminated", 0, 0), ("terminated", 0, 0)], "Succeeded"),
        ("Always", [("waiting", None, 0)], "Pending"),
        ("Always", [("waiting", None, 3)], "Running"),
    ],
)
def test_phase(policy: str, states: list, expected: str) -> None:
    cs = [
        CState(f"c{i}", "img", state=s, exit_code=code, restart_count=r)
        for i, (s, code, r) in enumerate(states)
    ]
    assert podspec.phase(policy, [], cs, init_done=True) == expected


def test_phase_pending_until_init_containers_finish_and_failed_when_init_fails_never() -> None:
    init = [CState("i", "img", state="terminated", exit_code=2)]
    assert podspec.phase("Always", init, [], init_done=False) == "Pending"
    assert podspec.phase("Never", init, [], init_done=False) == "Failed"


def test_conditions_keep_transition_time_while_unchanged() -> None:
    first = podspec.conditions([], "t1", {"Ready": False}, {"Ready": "ContainersNotReady"})
    same = podspec.conditions(first, "t2", {"Ready": False}, {})
    flipped = podspec.conditions(same, "t3", {"Ready": True}, {})
    assert same[0]["lastTransitionTime"] == "t1" and first[0]["reason"] == "ContainersNotReady"
    assert flipped[0] == {
        "type": "Ready",
        "status": "True",
        "lastTransitionTime": "t3",
        "lastProbeTime": None,
        "reason": None,
    }
