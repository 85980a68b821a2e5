"""Components reach the API server at the endpoint they are given, with the pod's service account, or
with a kubeconfig by hand."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from operators.runtime.login import LoginError, credentials

SERVER = "https://172.30.0.10:6443"


@pytest.fixture
def service_account(tmp_path: Path) -> Path:
    (tmp_path / "token").write_text("abc.def\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    return tmp_path


def kubeconfig(tmp_path: Path, cluster: dict, user: dict) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": SERVER, **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    return str(path)


def test_in_cluster_uses_the_given_endpoint_with_the_service_account(service_account: Path) -> None:
    info = credentials(SERVER, None, service_account).connection_info()
    assert info.server == SERVER
    assert (info.scheme, info.token) == ("Bearer", "abc.def")
    assert info.ca_path == str(service_account / "ca.crt") and not info.insecure


def test_the_rotated_token_is_read_at_each_request(service_account: Path) -> None:
    creds = credentials(SERVER, None, service_account)
    (service_account / "token").write_text("new.token")
    assert creds.headers()["Authorization"] == "Bearer new.token"


def test_in_cluster_refuses_a_missing_or_odd_endpoint_or_token(service_account: Path, tmp_path: Path) -> None:
    for bad in (None, "", "http://172.30.0.10:6443", "172.30.0.10:6443"):
        with pytest.raises(LoginError):
            credentials(bad, None, service_account)
    with pytest.raises(LoginError, match="service-account"):
        credentials(SERVER, None, tmp_path / "missing")


def test_a_kubeconfig_with_a_token(tmp_path: Path) -> None:
    info = credentials(None, kubeconfig(tmp_path, {"insecure-skip-tls-verify": True}, {"token": "t0ken"}))
    assert (info.server, info.bearer(), info.insecure) == (SERVER, "t0ken", True)


def test_a_kubeconfig_with_embedded_certificates_gets_private_files(tmp_path: Path) -> None:
    data = {name: base64.b64encode(f"{name} pem".encode()).decode() for name in ("ca", "cert", "key")}
    creds = credentials(None, kubeconfig(tmp_path, {"certificate-authority-data": data["ca"]},
                                         {"client-certificate-data": data["cert"], "client-key-data": data["key"]}))
    assert [Path(f).read_text() for f in (creds.ca_file, creds.cert_file, creds.key_file)] == [
        "ca pem", "cert pem", "key pem"]
    assert Path(creds.key_file).stat().st_mode & 0o077 == 0
    assert creds.bearer() is None and "Authorization" not in creds.headers()


def test_kubeconfig_paths_are_relative_to_its_folder(tmp_path: Path) -> None:
    creds = credentials(None, kubeconfig(tmp_path, {"certificate-authority": "ca.crt"}, {"tokenFile": "tok"}))
    (tmp_path / "tok").write_text("from-file")
    assert creds.ca_file == str(tmp_path / "ca.crt") and creds.bearer() == "from-file"


def test_a_kubeconfig_knet_cannot_use_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(LoginError, match="exec plugins"):
        credentials(None, kubeconfig(tmp_path, {}, {"exec": {"command": "aws"}}))
    with pytest.raises(LoginError, match="no context named"):
        credentials(None, _without_context(tmp_path))
    with pytest.raises(LoginError, match="kubeconfig"):
        credentials(None, str(tmp_path / "missing"))


def _without_context(tmp_path: Path) -> str:
    path = tmp_path / "broken"
    path.write_text(yaml.safe_dump({"current-context": "nope", "contexts": [], "clusters": [], "users": []}))
    return str(path)
