"""IPAM, volumes, probes' thresholds and the agnhost stand-ins (on loopback)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from http.client import HTTPConnection
from pathlib import Path

import pytest

from operators.devcluster.podspec import ConfigError
from operators.devcluster.probes import ProbeState, check
from operators.devcluster.sandbox import IPAM
from operators.devcluster.volumes import Volumes, remove_created_paths


def test_ipam_skips_gateway_reuses_per_owner_and_persists(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path / "ipam.json", ["10.244.1.0/30"])
    assert ipam.allocate("a") == ["10.244.1.2"]
    assert ipam.allocate("a") == ["10.244.1.2"]
    with pytest.raises(RuntimeError, match="exhausted"):
        ipam.allocate("b")
    again = IPAM(tmp_path / "ipam.json", ["10.244.1.0/30"])
    assert again.used == {"10.244.1.2": "a"}
    again.release("a")
    assert again.allocate("b") == ["10.244.1.2"]


def test_ipam_dual_stack_gives_one_address_per_family(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path / "ipam.json", ["10.244.1.0/24", "fd00:10:244:1::/64"])
    assert ipam.allocate("p") == ["10.244.1.2", "fd00:10:244:1::2"]


def pod_with_volumes() -> dict:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"a": "1"}},
        "spec": {
            "serviceAccountName": "sa",
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "k", "path": "sub/file"}]}},
                {"name": "scratch", "emptyDir": {}},
                {
                    "name": "kube-api-access",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                                    ]
                                }
                            },
                        ]
                    },
                },
            ],
        },
    }


def test_volumes_materialize_and_mount_targets_are_created_and_removed(tmp_path: Path) -> None:
    data = {"cm": {"k": "v"}, "kube-root-ca.crt": {"ca.crt": "CA"}}
    requested = []

    def token(sa: str, aud: list[str] | None, exp: int) -> tuple[str, int]:
        requested.append((sa, aud, exp))
        return "tok", exp

    record = tmp_path / "created"
    vols = Volumes(pod_with_volumes(), tmp_path / "vols", lambda kind, name: data.get(name), token, record)
    vols.materialize()
    assert (tmp_path / "vols/cfg/sub/file").read_text() == "v"
    api = tmp_path / "vols/kube-api-access"
    assert (api / "token").read_text() == "tok" and (api / "ca.crt").read_text() == "CA"
    assert (api / "namespace").read_text() == "ns"
    assert requested == [("sa", None, 3607)]
    target = tmp_path / "root/var/run/secrets/kubernetes.io/serviceaccount"
    mounts = vols.mounts(
        {
            "volumeMounts": [
                {"name": "kube-api-access", "mountPath": str(target)},
                {"name": "scratch", "mountPath": str(tmp_path / "root/data")},
            ]
        }
    )
    assert mounts == [
        (str(api), str(target), True),
        (str(tmp_path / "vols/scratch"), str(tmp_path / "root/data"), False),
    ]
    assert target.is_dir()
    remove_created_paths(record)
    assert not (tmp_path / "root").exists()


def test_missing_config_map_volume_is_a_config_error(tmp_path: Path) -> None:
    vols = Volumes(pod_with_volumes(), tmp_path, lambda kind, name: None, lambda *a: ("t", 1), tmp_path / "c")
    with pytest.raises(ConfigError, match='configmap "cm" not found'):
        vols.materialize()


def test_probe_thresholds() -> None:
    ps = ProbeState(
        {"periodSeconds": 1, "failureThreshold": 2, "successThreshold": 2, "initialDelaySeconds": 5}, 100
    )
    assert not ps.due(104) and ps.due(105)
    ps.record(True, 105)
    assert not ps.ok
    ps.record(True, 106)
    assert ps.ok
    ps.record(False, 107)
    assert ps.ok and not ps.failed
    ps.record(False, 108)
    assert ps.failed and not ps.ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def netexec() -> tuple[int, int]:
    http, udp = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "operators.devcluster.agnhost",
            "netexec",
            f"--http-port={http}",
            f"--udp-port={udp}",
        ]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", http), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield http, udp
    proc.terminate()
    proc.wait()


def test_netexec_answers_http_and_udp_like_agnhost(netexec: tuple[int, int]) -> None:
    http, udp = netexec
    get = lambda path: urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=3).read().decode()  # noqa: E731
    assert get("/hostname") == socket.gethostname()
    assert get("/clientip").startswith("127.0.0.1:")
    assert get("/echo?msg=hi") == "hi"
    assert '"responses": ["' + socket.gethostname() in get(
        f"/dial?request=hostname&host=127.0.0.1&port={udp}&protocol=udp"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(b"echo pong", ("127.0.0.1", udp))
        assert s.recv(100) == b"pong"
    # a POST body is read, so the next request on the same kept-alive connection is answered
    conn = HTTPConnection("127.0.0.1", http, timeout=3)
    conn.request("POST", "/echo?msg=a", body=b"x" * 1000)
    assert conn.getresponse().read() == b"a"
    conn.request("GET", "/echo?msg=b")
    assert conn.getresponse().read() == b"b"
    conn.close()
    tcp_ok, _ = check({"tcpSocket": {"port": http}}, "127.0.0.1", {}, lambda c, t: None)
    tcp_bad, msg = check({"tcpSocket": {"port": free_port()}}, "127.0.0.1", {}, lambda c, t: None)
    assert tcp_ok and not tcp_bad and "probe failed" in msg
    ok, _ = check(
        {"httpGet": {"path": "/healthz", "port": "http"}},
        "127.0.0.1",
        {"ports": [{"name": "http", "containerPort": http}]},
        lambda c, t: None,
    )
    assert ok


def test_connect_exit_codes_and_messages(netexec: tuple[int, int]) -> None:
    http, _ = netexec
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "operators.devcluster.agnhost", "connect", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=20)

    assert run(f"127.0.0.1:{http}", "--timeout=2s").returncode == 0
    refused = run(f"127.0.0.1:{free_port()}", "--timeout=2s")
    assert refused.returncode == 1 and refused.stderr.startswith("REFUSED")
    bad = run("no-port-here")
    assert bad.returncode == 1 and bad.stderr.startswith("UNKNOWN")
