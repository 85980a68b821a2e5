"""The agent reaches the API server at the endpoint it is given, with the pod's service account."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from operators.agent.login import LoginError, configuration, connection_info


@pytest.fixture
def service_account(tmp_path: Path) -> Path:
    (tmp_path / "token").write_text("abc.def")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    return tmp_path


def test_in_cluster_uses_the_given_endpoint_with_the_service_account(service_account: Path) -> None:
    config = configuration("https://172.30.0.10:6443", None, service_account)
    info = connection_info(config)
    assert info.server == "https://172.30.0.10:6443"
    assert (info.scheme, info.token) == ("Bearer", "abc.def")
    assert info.ca_path == str(service_account / "ca.crt") and not info.insecure


def test_in_cluster_refuses_a_missing_or_odd_endpoint_or_token(service_account: Path, tmp_path: Path) -> None:
    for bad in (None, "", "http://172.30.0.10:6443", "172.30.0.10:6443"):
        with pytest.raises(LoginError):
            configuration(bad, None, service_account)
    with pytest.raises(LoginError, match="service-account"):
        configuration("https://172.30.0.10:6443", None, tmp_path / "missing")


def test_a_kubeconfig_for_running_by_hand(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://172.30.0.10:6443",
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    info = connection_info(configuration(None, str(kubeconfig)))
    assert (info.server, info.token, info.insecure) == ("https://172.30.0.10:6443", "t0ken", True)
