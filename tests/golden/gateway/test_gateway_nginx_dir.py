"""`knet render gateway --out DIR`, run by a real nginx: `nginx -p DIR -c nginx.conf` as written, in a network
namespace of its own (`unshare -n`) with two loopback HTTP backends, answering real requests on loopback
ports. It shows the directory is self-contained (relative paths, certificates from the Secret in the files,
endpoints from the EndpointSlices, no Lua) and that routes behave as the Gateway API says."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from operators.ingress.certs import self_signed

HERE = Path(__file__).parent


def _unshare() -> list[str]:
    if not shutil.which("nginx") or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs nginx, unshare and ip")
    cmd = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
    if subprocess.run([*cmd, "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot make a network namespace here")
    return cmd


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """Render the objects into a directory, run nginx on it in a new network namespace, send the requests."""
    unshare = _unshare()
    tmp = tmp_path_factory.mktemp("gateway-dir")
    cert, key = self_signed(["secure.test"])
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "secure-cert", "namespace": "app"},
              "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()}}
    (tmp / "secret.yaml").write_text(yaml.safe_dump(secret))
    out = tmp / "out"
    render = subprocess.run([sys.executable, "-m", "operators.cli", "render", "gateway", "-f",
                             str(HERE / "e2e-objects.yaml"), "-f", str(tmp / "secret.yaml"), "--out", str(out),
                             "--http-port", "18081", "--https-port", "18444", "--status-port", "18254"],
                            capture_output=True, text=True, check=False)
    assert render.returncode == 0, render.stderr
    plan = {
        "root": {"port": 18080, "host": "app.test", "path": "/anything"},
        "host-with-port": {"port": 18080, "host": "app.test:18080", "path": "/anything"},
        "canary": {"port": 18080, "host": "app.test", "path": "/api/x", "headers": {"X-Canary": "yes",
                                                                                      "X-Trace": "client"}},
        "no-canary": {"port": 18080, "host": "app.test", "path": "/api/x"},
        "health-get": {"port": 18080, "host": "app.test", "path": "/api/health"},
        "health-post": {"port": 18080, "host": "app.test", "path": "/api/health", "method": "POST"},
        "redirect": {"port": 18080, "host": "app.test", "path": "/old/page?q=1"},
        "rewrite": {"port": 18080, "host": "app.test", "path": "/v1/items?id=7"},
        "broken": {"port": 18080, "host": "app.test", "path": "/broken"},
        "other-host": {"port": 18080, "host": "nobody.test", "path": "/"},
        "ingress": {"port": 18081, "host": "legacy.test", "path": "/x"},
        "tls": {"port": 18443, "host": "secure.test", "path": "/", "tls": True},
        "mirror": {"port": 18080, "host": "app.test", "path": "/mirror/me"},
    }
    requests = [dict(r, name=n) for n, r in plan.items()]
    requests += [{"name": "split", "port": 18080, "host": "app.test", "path": "/split"}] * 200
    requests += [{"name": "half-broken", "port": 18080, "host": "app.test", "path": "/half-broken"}] * 100
    (tmp / "requests.json").write_text(json.dumps(requests))
    client = [sys.executable, str(HERE / "netns_client.py"), str(out), str(tmp / "requests.json")]
    run = subprocess.run([*unshare, *client], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    answers: dict[str, list[dict]] = {"seen": [result["seen"]]}
    for req, answer in zip(requests, result["answers"], strict=True):
        answers.setdefault(req["name"], []).append(answer)
    return answers


def one(served: dict[str, list[dict]], name: str) -> dict:
    return served[name][0]


def test_the_directory_needs_nothing_outside_it(served: dict[str, list[dict]], tmp_path_factory) -> None:
    conf = next(tmp_path_factory.getbasetemp().glob("gateway-dir*/out/nginx.conf")).read_text()
    assert "/var/lib/knet" not in conf and "lua" not in conf
    assert 'ssl_certificate "certs/app_secure-cert_' in conf and "server 10.255.0.1:19001" in conf


def test_routes_by_host_and_path(served: dict[str, list[dict]]) -> None:
    assert one(served, "root")["backend"] == "v1"
    assert one(served, "other-host")["status"] == 404


def test_the_backend_gets_the_host_header_as_sent_port_included(served: dict[str, list[dict]]) -> None:
    answer = one(served, "host-with-port")
    assert (answer["backend"], answer["seen"]["host"]) == ("v1", "app.test:18080")
    assert one(served, "root")["seen"]["host"] == "app.test"


def test_header_match_selects_the_rule_and_its_header_filters_apply(served: dict[str, list[dict]]) -> None:
    canary = one(served, "canary")
    assert canary["backend"] == "v2" and canary["seen"]["x-stage"] == "canary"
    assert canary["seen"]["x-trace"] == "client,knet"
    assert canary["headers"]["cache-control"] == "no-store" and "server-timing" not in canary["headers"]
    assert one(served, "no-canary")["backend"] == "v1"


def test_method_match_on_an_exact_path(served: dict[str, list[dict]]) -> None:
    assert one(served, "health-get")["backend"] == "v2"
    assert one(served, "health-post")["backend"] == "v1"


def test_weights_split_traffic_3_to_1_and_weight_0_gets_none(served: dict[str, list[dict]]) -> None:
    counts = Counter(a["backend"] for a in served["split"])
    assert set(counts) == {"v1", "v2"} and 110 <= counts["v1"] <= 185, counts


def test_an_invalid_backend_ref_answers_500_for_its_share(served: dict[str, list[dict]]) -> None:
    assert one(served, "broken")["status"] == 500
    counts = Counter(a["status"] for a in served["half-broken"])
    assert set(counts) == {200, 500} and 25 <= counts[500] <= 75, counts


def test_redirect_replaces_the_prefix_and_keeps_the_query(served: dict[str, list[dict]]) -> None:
    redirect = one(served, "redirect")
    assert (redirect["status"], redirect["headers"]["location"]) == (301, "https://secure.test/new/page?q=1")


def test_url_rewrite_sets_path_and_host(served: dict[str, list[dict]]) -> None:
    rewrite = one(served, "rewrite")
    assert (rewrite["path"], rewrite["seen"]["host"]) == ("/items?id=7", "internal.test")


def test_an_ingress_beside_the_gateway_on_the_same_nginx(served: dict[str, list[dict]]) -> None:
    assert one(served, "ingress")["backend"] == "v2"


def test_https_listener_serves_the_secret_certificate(served: dict[str, list[dict]]) -> None:
    tls = one(served, "tls")
    assert tls["certificate"] == ["secure.test"] and tls["backend"] == "v1"


def test_render_ingress_out_is_a_directory_nginx_accepts_as_written(tmp_path: Path) -> None:
    if not shutil.which("nginx"):
        pytest.skip("needs nginx")
    case = HERE.parent / "ingress" / "cases" / "tls.yaml"
    render = subprocess.run([sys.executable, "-m", "operators.cli", "render", "ingress", "-f", str(case),
                             "--out", str(tmp_path / "out"), "--http-port", "18081", "--https-port", "18444",
                             "--status-port", "18254"], capture_output=True, text=True, check=False)
    assert render.returncode == 0, render.stderr
    conf = (tmp_path / "out" / "nginx.conf").read_text()
    assert "/var/lib/knet" not in conf and any((tmp_path / "out" / "certs").glob("*_*.pem"))
    check = subprocess.run(["nginx", "-t", "-q", "-p", f"{tmp_path / 'out'}/", "-c", "nginx.conf", "-e", "stderr"],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def test_request_mirror_copies_the_request_to_another_backend(served: dict[str, list[dict]]) -> None:
    assert one(served, "mirror")["backend"] == "v1"
    assert "/mirror/me" in one(served, "seen")["v2"] and "/mirror/me" in one(served, "seen")["v1"]
