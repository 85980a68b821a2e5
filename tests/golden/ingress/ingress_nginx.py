"""Shared by the ingress golden and live tests: where nginx and its Lua module are, and a Runtime
rooted in a throwaway directory."""

from __future__ import annotations

import shutil
from pathlib import Path

from operators.ingress import files
from operators.ingress.model import IngressModel
from operators.ingress.render import Runtime, render_config

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LUA_MODULE = Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")


def runtime_for(root: Path, dynamic: bool = False) -> Runtime:
    """Paths under `root`, high ports, and no IPv6 listeners (machines without IPv6 must pass too)."""
    return Runtime(prefix=str(root), certificate_dir=f"{root}/certs", default_certificate=f"{root}/certs/default.pem",
                   pid_file=f"{root}/nginx.pid", temp_dir=f"{root}/tmp", error_log=f"{root}/error.log",
                   access_log="off", http_port=18080, https_port=18443, status_port=18254, ipv6=False,
                   dynamic_endpoints=dynamic, control_socket=f"{root}/control.sock")


def nginx_check(model: IngressModel, root: Path, dynamic: bool = False) -> str:
    """Render `model` for a prefix in `root`, assert that `nginx -t` accepts it, return the text."""
    rt = runtime_for(root, dynamic)
    files.prepare(rt)
    files.write_certificates(model, rt)
    text = render_config(model, rt)
    error = files.check_config(text, rt, NGINX)
    assert error is None, f"nginx -t failed: {error}"
    return text
