"""The programs that e2e tests run in pods (tests/e2e/apps): each imports, and the echo server answers.

Importing every one catches what ruff cannot (a name used before it exists at import time); the echo
server, the largest, is also asked over HTTP, WebSocket and gRPC here, as nginx asks it in the e2e tests.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import socket
import urllib.request

import pytest

from tests.e2e import apps
from tests.e2e.apps import app_path, echo_server, http_fetch, websocket_client

NAMES = sorted(m.name for m in pkgutil.iter_modules(apps.__path__))


@pytest.mark.parametrize("name", NAMES)
def test_each_program_is_a_module_with_a_docstring_and_main(name: str) -> None:
    module = importlib.import_module(f"tests.e2e.apps.{name}")
    assert module.__doc__ and module.__doc__.strip(), name
    assert callable(module.main), name
    assert app_path(name).endswith(f"/tests/e2e/apps/{name}.py")


def test_an_unknown_program_is_an_error_before_any_pod_runs() -> None:
    with pytest.raises(FileNotFoundError):
        app_path("no_such_program")


@pytest.fixture(scope="module")
def echo() -> int:
    return echo_server.serve(0).server_address[1]


def test_echo_reports_what_it_saw(echo: int) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{echo}/a/b?c=d", method="PUT", headers={"Host": "x.test"})
    with urllib.request.urlopen(req, timeout=5) as r:
        report = json.loads(r.read())
    assert report == {"pod": socket.gethostname(), "port": echo, "tls": False, "method": "PUT",
                      "path": "/a/b?c=d", "host": "x.test", "code": ""}
    assert http_fetch.one(f"http://127.0.0.1:{echo}/").startswith("{")


def test_fetch_names_a_refused_connection() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        assert http_fetch.one(f"http://127.0.0.1:{port}/") == "refused"


def test_echo_websocket_echoes_a_text_frame(echo: int) -> None:
    with socket.create_connection(("127.0.0.1", echo), 5) as s:
        status, answer = websocket_client.exchange(s, "ws.test")
    assert status == "HTTP/1.1 101 Switching Protocols"
    assert answer == f"hello from {socket.gethostname()}"


def test_echo_grpc_answers_a_unary_call() -> None:
    port = echo_server.serve_grpc(0).server_address[1]
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + echo_server.frame(4, 0, 0)
                  + echo_server.frame(1, 5, 1, b"\x83"))  # HEADERS, END_STREAM|END_HEADERS on stream 1
        got = b""
        while b"grpc-status" not in got:
            chunk = s.recv(4096)
            assert chunk, got
            got += chunk
    assert socket.gethostname().encode() in got and b"application/grpc" in got
