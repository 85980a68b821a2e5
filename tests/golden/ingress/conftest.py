"""`nginx_t`: render a model for a throwaway prefix and assert that `nginx -t` accepts it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from ingress_nginx import LUA_MODULE, NGINX, nginx_check

from operators.ingress.model import IngressModel


@pytest.fixture
def nginx_t(tmp_path: Path) -> Callable[..., str]:
    """Check a model with `nginx -t`; returns the rendered text."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed")

    def check(model: IngressModel, dynamic: bool = False) -> str:
        if dynamic and not LUA_MODULE.exists():
            pytest.skip("dynamic endpoints need libnginx-mod-http-lua")
        return nginx_check(model, tmp_path, dynamic)

    return check
