"""kube-public/cluster-info as kubeadm publishes it."""

from __future__ import annotations

import base64

import yaml

from operators.devcluster import clusterinfo

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_kubeconfig_holds_the_server_and_ca_and_no_credentials() -> None:
    config = yaml.safe_load(clusterinfo.kubeconfig("https://172.30.1.10:6443", CA))
    assert config["clusters"][0]["cluster"] == {"server": "https://172.30.1.10:6443",
                                                "certificate-authority-data": base64.b64encode(CA).decode()}
    assert not config["users"] and not config["contexts"]


def test_anonymous_may_get_the_config_map_and_nothing_else() -> None:
    config_map, role, binding = clusterinfo.objects("https://172.30.1.10:6443", CA)
    assert config_map["metadata"] == {"name": "cluster-info", "namespace": "kube-public"}
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"],
                              "verbs": ["get"]}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == "kubeadm:bootstrap-signer-clusterinfo"
    assert [s["name"] for s in binding["subjects"]] == ["system:anonymous"]
