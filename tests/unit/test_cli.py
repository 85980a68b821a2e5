"""The `knet` command line runs the pure cores offline on YAML files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

GOLDEN = Path(__file__).parents[1] / "golden"


def knet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "operators.cli", *args], capture_output=True, text=True, timeout=60)


def test_version() -> None:
    out = knet("--version")
    assert out.returncode == 0 and out.stdout.startswith("knet ")


def test_render_proxy_matches_its_golden_file() -> None:
    case = GOLDEN / "proxy/cases/clusterip-multiport.yaml"
    expected = (GOLDEN / "proxy/expected/clusterip-multiport.nft").read_text()
    node = next(o["metadata"]["name"] for o in yaml.safe_load_all(case.read_text()) if o and o["kind"] == "Node")
    out = knet("render", "proxy", "-f", str(case), "--node", node)
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected


OBJECTS = """
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {nodeName: n1, containers: [{name: c, image: i}]}
status: {podIP: 10.244.1.2, podIPs: [{ip: 10.244.1.2}], phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {nodeName: n1, containers: [{name: c, image: i}]}
status: {podIP: 10.244.1.3, podIPs: [{ip: 10.244.1.3}], phase: Running}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-b, namespace: x}
spec: {podSelector: {matchLabels: {app: b}}, policyTypes: [Ingress]}
"""


def test_explain_netpol_exit_code_follows_the_verdict(tmp_path: Path) -> None:
    objects = tmp_path / "o.yaml"
    objects.write_text(OBJECTS)
    denied = knet("explain", "netpol", "-f", str(objects), "--from", "x/a", "--to", "x/b", "--port", "80/TCP")
    assert denied.returncode == 1 and denied.stdout.startswith("DENIED") and "deny-b" in denied.stdout
    allowed = knet("explain", "netpol", "-f", str(objects), "--from", "x/b", "--to", "x/a")
    assert allowed.returncode == 0 and allowed.stdout.startswith("ALLOWED")


def test_render_corefile_and_ingress_match_their_golden_files() -> None:
    out = knet("render", "corefile", "-f", str(GOLDEN / "dns/cases/acl.yaml"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == (GOLDEN / "dns/expected/acl.Corefile").read_text()
    out = knet("render", "ingress", "-f", str(GOLDEN / "ingress/cases/annotations-access.yaml"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == (GOLDEN / "ingress/expected/annotations-access.conf").read_text()


SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 10.96.7.7, clusterIPs: [10.96.7.7], ports: [{name: http, port: 80, protocol: TCP}]}
"""


def test_dns_serves_objects_without_an_api_server(tmp_path: Path) -> None:
    import socket
    import time

    from dnslib import DNSRecord

    objects = tmp_path / "svc.yaml"
    objects.write_text(SERVICE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "operators.cli", "dns", "--objects", str(objects),
                             "--listen", f"127.0.0.1:{port}"], stderr=subprocess.PIPE, text=True)
    try:
        q = DNSRecord.question("web.shop.svc.cluster.local", "A")
        answer = None
        deadline = time.monotonic() + 15
        while answer is None and time.monotonic() < deadline:
            try:
                answer = DNSRecord.parse(q.send("127.0.0.1", port, timeout=0.5))
            except OSError:
                time.sleep(0.2)
        assert answer is not None, "knet dns did not answer"
        assert [str(r.rdata) for r in answer.rr] == ["10.96.7.7"]
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("command", [("render", "proxy", "--node", "n1"), ("render", "netpol", "--node", "n1"),
                                     ("render", "ingress"), ("render", "corefile"), ("render", "cni", "--node", "n1")])
@pytest.mark.parametrize("document", ["kind: 5\napiVersion: v1\n", "kind: Service\napiVersion: [v1]\n",
                                      "kind: Service\napiVersion: v1\nmetadata: [x]\n", "kind: [\n"])
def test_bad_input_files_give_a_clear_error_not_a_traceback(tmp_path: Path, command: tuple[str, ...],
                                                            document: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(document)
    out = knet(*command, "-f", str(bad))
    assert out.returncode == 2 and out.stderr.startswith(f"error: {bad}") and "Traceback" not in out.stderr
