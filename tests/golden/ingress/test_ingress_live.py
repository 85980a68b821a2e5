"""The golden configs served by a real nginx on loopback: routing by host, path type, regex, canary
rules, TLS redirects and SNI, and endpoint updates without reload in dynamic mode.

Every upstream is pointed at a local backend that answers with the upstream's name, so each request
shows which backend nginx chose. Needs nginx (and libnginx-mod-http-lua for the dynamic test)."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from ingress_nginx import LUA_MODULE, NGINX, runtime_for

from operators.ingress import files
from operators.ingress.model import IngressModel
from operators.ingress.offline import model_from_objects
from operators.ingress.render import Runtime, render_config, render_endpoints
from operators.kube.objects import load_objects

CASES = Path(__file__).parent / "cases"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Backends:
    """One loopback HTTP server per name, answering every request with that name (and `.../request-id`
    with the X-Request-ID header it received)."""

    def __init__(self) -> None:
        self.servers: dict[str, ThreadingHTTPServer] = {}

    def port(self, name: str) -> int:
        if name not in self.servers:
            class Handler(BaseHTTPRequestHandler):
                def do_GET(self) -> None:
                    asked = self.path.endswith("/request-id")
                    body = (self.headers.get("X-Request-ID", "") if asked else name).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *args: object) -> None:
                    pass

            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers[name] = server
        return self.servers[name].server_address[1]

    def close(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()


@pytest.fixture
def backends() -> Iterator[_Backends]:
    b = _Backends()
    yield b
    b.close()


class _Nginx:
    def __init__(self, root: Path, model: IngressModel, dynamic: bool) -> None:
        base = runtime_for(root, dynamic)
        self.rt: Runtime = replace(base, http_port=_free_port(), https_port=_free_port(), status_port=_free_port())
        files.prepare(self.rt)
        files.write_certificates(model, self.rt)
        self.conf = Path(root) / "nginx.conf"
        self.conf.write_text(render_config(model, self.rt))
        self.proc = subprocess.Popen([NGINX, "-c", str(self.conf), "-p", f"{root}/"], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.get("127.0.0.1", "/healthz", port=self.rt.status_port)[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not start: " + (Path(self.rt.error_log).read_text()))

    def get(self, host: str, path: str, headers: dict[str, str] | None = None,
            port: int | None = None) -> tuple[int, str]:
        """(status, body), or (status, Location) for redirects."""
        conn = http.client.HTTPConnection("127.0.0.1", port or self.rt.http_port, timeout=5)
        try:
            conn.request("GET", path, headers={"Host": host, **(headers or {})})
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
            return response.status, response.getheader("Location") if 300 <= response.status < 400 else body
        finally:
            conn.close()

    def post_endpoints(self, body: str) -> str:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(self.rt.control_socket)
        conn = http.client.HTTPConnection("localhost", timeout=5)
        conn.sock = sock
        conn.request("POST", "/endpoints", body=body.encode())
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200, text
        return text

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def serve(tmp_path: Path, backends: _Backends) -> Iterator:
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed")
    started: list[_Nginx] = []

    def start(case: str, dynamic: bool = False) -> _Nginx:
        if dynamic and not LUA_MODULE.exists():
            pytest.skip("dynamic endpoints need libnginx-mod-http-lua")
        model, _ = model_from_objects(load_objects([CASES / f"{case}.yaml"]))
        if not dynamic:
            model = replace(model, upstreams=tuple(
                replace(u, endpoints=(f"127.0.0.1:{backends.port(u.name)}",)) for u in model.upstreams))
        started.append(_Nginx(tmp_path, model, dynamic))
        return started[-1]

    yield start
    for n in started:
        n.stop()


def test_hosts_and_wildcards(serve) -> None:
    n = serve("wildcard-hosts")
    assert n.get("a.example.com", "/") == (200, "app_web_80")
    assert n.get("www.example.com", "/") == (200, "app_api_8000")  # exact host beats the wildcard
    assert n.get("x.b.example.com", "/") == (200, "app_api_8000")
    assert n.get("x.y.b.example.com", "/")[0] == 404  # a wildcard covers one label only
    assert n.get("example.com", "/")[0] == 404
    assert n.get("unknown.org", "/hostless/page") == (200, "app_web_80")


def test_request_id(serve) -> None:
    """X-Request-ID: the client's own is passed on (as ingress-nginx does), else every request gets a new one."""
    n = serve("wildcard-hosts")
    ids = [n.get("a.example.com", "/request-id")[1] for _ in range(20)]
    assert all(ids) and len(set(ids)) == len(ids), ids
    assert n.get("a.example.com", "/request-id", {"X-Request-ID": "trace-42"}) == (200, "trace-42")


def test_path_types(serve) -> None:
    n = serve("path-types")
    host = "shop.example.com"
    assert n.get(host, "/api")[1] == "shop_api_9000"
    assert n.get(host, "/api/")[1] == "shop_api_9000"
    assert n.get(host, "/api/v1")[1] == "shop_api_9000"
    assert n.get(host, "/apix")[1] == "shop_web_80"  # Prefix matches whole path elements
    assert n.get(host, "/api/health")[1] == "shop_web_80"  # Exact beats Prefix
    assert n.get(host, "/staticfiles")[1] == "shop_web_80"
    assert n.get(host, "/docs/") == (200, "shop_api_9000")
    assert n.get(host, "/docs") == (200, "shop_web_80")  # no auto-redirect to the Exact `/docs/`


def test_regex_paths(serve) -> None:
    n = serve("regex-paths")
    host = "regex.example.com"
    assert n.get(host, "/api/v2/users/123")[1] == "app_api_8000"
    assert n.get(host, "/API/V2/users/123")[1] == "app_api_8000"  # use-regex is case-insensitive
    assert n.get(host, "/api/v1/users/0")[1] == "app_web_80"  # Exact first
    assert n.get(host, "/api/v2/users/1234567")[1] == "app_web_80"  # the regex is anchored with $
    assert n.get(host, "/static.css")[1] == "app_web_80"


def test_redirects_and_rewrites(serve) -> None:
    n = serve("annotations-proxy")
    port = n.rt.http_port
    assert n.get("approot.example.com", "/") == (302, f"http://approot.example.com:{port}/app1")
    assert n.get("redirect.example.com", "/old/x") == (301, "https://new.example.com/landing?from=old")
    assert n.get("redirect.example.com", "/temp") == (302, "http://maintenance.example.com:8080/")
    assert n.get("rewrite.example.com", "/something/else") == (200, "app_web_80")
    assert n.get("access.example.com", "/")[0] == 404  # no such host here: the catch-all answers


def test_access_lists(serve) -> None:
    n = serve("annotations-access")
    assert n.get("access.example.com", "/allow")[0] == 403  # 127.0.0.1 is not in the allow list
    assert n.get("access.example.com", "/deny")[1] == "app_web_80"
    assert n.get("access.example.com", "/broken")[0] == 403  # unreadable list: fail closed


def test_canary(serve) -> None:
    n = serve("canary")
    host = "canary.example.com"
    assert n.get(host, "/", {"X-Canary": "always"})[1] == "app_api_8000"
    assert n.get(host, "/", {"X-Canary": "never", "Cookie": "canary=always"})[1] == "app_web_80"
    assert n.get(host, "/", {"Cookie": "canary=always"})[1] == "app_api_8000"
    assert n.get(host, "/value/x", {"X-Region": "eu-west-1"})[1] == "app_api_8000"
    assert n.get(host, "/value/x", {"X-Region": "us-east-1"})[1] == "app_web_80"
    assert n.get(host, "/weighted")[1] == "app_api_8000"


def test_tls_redirect_and_sni(serve) -> None:
    n = serve("tls")
    assert n.get("shop.example.com", "/x")[0] == 308
    assert n.get("other.example.com", "/")[1] == "shop_web_80"  # ssl-redirect: "false"
    assert n.get("forced.example.com", "/")[0] == 308
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    for host, expected in (("shop.example.com", "shop.example.com"), ("x.apps.example.com", "*.apps.example.com"),
                           ("missing.example.com", "ingress.local")):
        with socket.create_connection(("127.0.0.1", n.rt.https_port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        names = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert names == [expected], host


def test_dynamic_endpoints_without_reload(serve, backends: _Backends) -> None:
    n = serve("dynamic-endpoints", dynamic=True)
    assert n.get("dyn.example.com", "/")[0] == 503  # no endpoints posted yet
    model, _ = model_from_objects(load_objects([CASES / "dynamic-endpoints.yaml"]))
    conf = n.conf.read_text()

    def post(mapping: dict[str, str]) -> None:
        n.post_endpoints(render_endpoints(replace(model, upstreams=tuple(
            replace(u, endpoints=(f"127.0.0.1:{backends.port(mapping[u.name])}",) if u.name in mapping else ())
            for u in model.upstreams))))

    web = next(u.name for u in model.upstreams if u.service == "app/web:80")
    post({web: "first"})
    assert n.get("dyn.example.com", "/")[1] == "first"
    assert n.get("dyn.example.com", "/idle")[0] == 503
    post({web: "second"})
    assert n.get("dyn.example.com", "/")[1] == "second"
    api = next(u.name for u in model.upstreams if u.service == "app/api:8000" and u.method == "hash")
    post({web: "second", api: "api"})
    assert {n.get("dyn.example.com", "/hash")[1] for _ in range(12)} == {"api"}  # the 25% canary has no peers
    post({web: "second", api: "api", "app_idle_80": "idle"})
    assert {n.get("dyn.example.com", "/hash")[1] for _ in range(40)} == {"api", "idle"}
    assert n.conf.read_text() == conf and n.proc.poll() is None  # same config, same process: no reload
