"""The chart's CNI mode (`cni.enabled`, charts/knet/ci/cni-values.yaml): the agent is told to be the node's CNI
and gets the node's CNI configuration directory read-write; nothing changes with it off."""

from __future__ import annotations

from typing import Any

import pytest
from chart_helpers import CHART, NAMESPACE, docs, helm, one, template, variant_args


def agent(variant: str | None = None, *args: str) -> dict[str, Any]:
    return one(docs(template(*variant_args(variant), *args)), "DaemonSet", "knet-agent")["spec"]["template"]["spec"]


def env(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}


def test_off_by_default_with_no_cni_environment_or_mount() -> None:
    pod = agent()
    assert not [k for k in env(pod) if k.startswith("KNET_CNI")]
    assert "cni-conf" not in {v["name"] for v in pod["volumes"]}


def test_on_the_agent_is_the_cni_and_writes_the_conflist_into_the_nodes_conf_dir() -> None:
    pod = agent("cni-values.yaml")
    assert env(pod)["KNET_CNI"] == "true" and env(pod)["KNET_CNI_CONFLIST"] == "/etc/cni/net.d/10-knet.conflist"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "cni-conf")
    assert mount["mountPath"] == "/etc/cni/net.d" and not mount.get("readOnly")
    volume = next(v for v in pod["volumes"] if v["name"] == "cni-conf")
    assert volume["hostPath"] == {"path": "/etc/cni/net.d", "type": "DirectoryOrCreate"}


def test_on_it_needs_no_more_than_net_admin_and_starts_on_not_ready_nodes_without_cluster_dns() -> None:
    pod = agent("cni-values.yaml")
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
    assert pod["tolerations"] == [{"operator": "Exists"}] and pod["dnsPolicy"] == "Default" and pod["hostNetwork"]


def test_another_conf_dir_is_mounted_and_named_alike() -> None:
    pod = agent("cni-values.yaml", "--set", "cni.confDir=/var/lib/cni/net.d")
    assert env(pod)["KNET_CNI_CONFLIST"] == "/var/lib/cni/net.d/10-knet.conflist"
    assert {"name": "cni-conf", "mountPath": "/var/lib/cni/net.d"} in pod["containers"][0]["volumeMounts"]


BAD = [
    (["--set", "cni.enabled=maybe"], "/cni/enabled"),
    (["--set", "cni.confDir=etc/cni/net.d"], "/cni/confDir"),
    (["--set", "cni.confDir=/etc/cni/net.d/"], "/cni/confDir"),
    (["--set", "cni.plugins=ptp"], "plugins"),
    (["--set", "cni.enabled=true,agent.enabled=false"], "/agent/enabled"),
]


@pytest.mark.parametrize(("args", "field"), BAD, ids=[a[-1] for a, _ in BAD])
def test_the_schema_rejects(args: list[str], field: str) -> None:
    proc = helm("template", "knet", str(CHART), "-n", NAMESPACE, *variant_args(None), *args, check=False)
    assert proc.returncode != 0 and "schema" in proc.stderr and field in proc.stderr, proc.stderr
