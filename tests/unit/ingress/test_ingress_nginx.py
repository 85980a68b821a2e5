"""The nginx supervisor against the real nginx: start, endpoints over the control socket, graceful reload,
restart after the master is killed, graceful stop."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
from pathlib import Path

import pytest

from operators.ingress import files
from operators.ingress.model import build_model
from operators.ingress.nginx import Nginx, parse_stub_status
from operators.ingress.render import Runtime, render_config

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LUA = Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")
pytestmark = pytest.mark.skipif(not Path(NGINX).exists() or not LUA.exists(), reason="needs nginx with its Lua module")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_start_push_reload_restart_stop(tmp_path: Path) -> None:
    p = str(tmp_path)
    rt = Runtime(prefix=p, certificate_dir=f"{p}/certs", default_certificate=f"{p}/certs/default.pem",
                 pid_file=f"{p}/nginx.pid", temp_dir=f"{p}/tmp", error_log=f"{p}/error.log", access_log="off",
                 http_port=_free_port(), https_port=_free_port(), status_port=_free_port(), ipv6=False,
                 dynamic_endpoints=True, control_socket=f"{p}/control.sock", worker_processes=1)
    files.prepare(rt)
    (tmp_path / "nginx.conf").write_text(render_config(build_model([], [], [], [], [])[0], rt))
    nginx = Nginx(rt, NGINX)
    restarts: list[int] = []

    async def restarted() -> None:
        restarts.append(1)

    async def scenario() -> None:
        await nginx.start()
        assert await nginx.healthy()
        stub = await nginx.stub_status()
        assert stub["active"] >= 1 and stub["requests"] >= 1, stub
        assert await nginx.push_endpoints("") == "generation 1: 0 upstreams"
        nginx.reload()
        assert (await nginx.push_endpoints("x 10.0.0.1 80\n")).startswith("generation 2: 1 upstreams")
        supervisor = asyncio.create_task(nginx.supervise(restarted, backoff=0.1))
        assert nginx.proc is not None
        os.kill(nginx.proc.pid, signal.SIGKILL)
        for _ in range(100):
            if restarts and await nginx.healthy():
                break
            await asyncio.sleep(0.1)
        assert restarts == [1] and await nginx.healthy()
        await nginx.stop()
        assert not nginx.running
        supervisor.cancel()

    asyncio.run(scenario())


def test_parse_stub_status() -> None:
    text = "Active connections: 3 \nserver accepts handled requests\n 16 16 31 \nReading: 0 Writing: 1 Waiting: 2 \n"
    assert parse_stub_status(text) == {"active": 3, "accepted": 16, "handled": 16, "requests": 31, "reading": 0,
                                       "writing": 1, "waiting": 2}
    assert parse_stub_status("") == {}
