"""Hostile strings in every HTTPRoute field that reaches nginx.conf: each is refused with its rule (the route
says why), never printed, and the config with the route's other rule and another tenant's route still passes
`nginx -t`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ingress_nginx import NGINX, nginx_check

from operators.gateway.offline import model_from_objects, status_text
from operators.ingress.render import Runtime, render_config

# refused wherever they appear; a `{` or `$host` may be a valid regex (nginx does not interpolate regexes)
DANGEROUS = ['x"; return 200 "owned', "x;\n}\nserver {", "a\\", "x' y", "\x00", "é", "a" * 2000]
ODD = ["$host", "{"]


def _fields(value: str) -> list[tuple[str, dict[str, Any]]]:
    """One rule per place a string can reach nginx.conf, each carrying `value`."""
    return [
        ("path", {"matches": [{"path": {"type": "PathPrefix", "value": "/" + value}}]}),
        ("regex", {"matches": [{"path": {"type": "RegularExpression", "value": "/" + value}}]}),
        ("header name", {"matches": [{"headers": [{"name": value, "value": "v"}]}]}),
        ("header value", {"matches": [{"headers": [{"name": "X-A", "value": value}]}]}),
        ("query", {"matches": [{"queryParams": [{"name": "q", "value": value, "type": "RegularExpression"}]}]}),
        ("set header", {"filters": [{"type": "RequestHeaderModifier",
                                     "requestHeaderModifier": {"set": [{"name": "X-A", "value": value}]}}]}),
        ("response header", {"filters": [{"type": "ResponseHeaderModifier",
                                          "responseHeaderModifier": {"add": [{"name": value, "value": "v"}]}}]}),
        ("redirect host", {"filters": [{"type": "RequestRedirect", "requestRedirect": {"hostname": value}}]}),
        ("rewrite path", {"filters": [{"type": "URLRewrite", "urlRewrite": {
            "path": {"type": "ReplaceFullPath", "replaceFullPath": "/" + value}}}]}),
        ("timeout", {"timeouts": {"request": value}}),
    ]


def _objects(rule: dict[str, Any]) -> list[dict[str, Any]]:
    backend = [{"name": "web", "port": 80}]
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "evil", "namespace": "a"},
             "spec": {"parentRefs": [{"name": "gw", "namespace": "a"}],
                      "rules": [{**rule, "backendRefs": backend},
                                {"matches": [{"path": {"type": "PathPrefix", "value": "/kept"}}],
                                 "backendRefs": backend}]}}
    other = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "good", "namespace": "a"},
             "spec": {"parentRefs": [{"name": "gw", "namespace": "a"}], "hostnames": ["good.test"],
                      "rules": [{"backendRefs": backend}]}}
    return [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "knet"},
             "spec": {"controllerName": "knet.io/gateway-nginx"}},
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
             "metadata": {"name": "gw", "namespace": "a"},
             "spec": {"gatewayClassName": "knet", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}},
            route, other,
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "a"},
             "spec": {"ports": [{"name": "http", "port": 80}]}}]


@pytest.mark.parametrize("value", DANGEROUS + ODD, ids=range(len(DANGEROUS + ODD)))
def test_hostile_strings_are_refused_with_their_rule_alone(value: str, tmp_path: Path) -> None:
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed")
    for where, rule in _fields(value):
        model, _, status = model_from_objects(_objects(rule))
        text = render_config(model, Runtime())
        evil = next(line for line in status_text(status) if line.startswith("HTTPRoute a/evil"))
        if value in DANGEROUS:
            assert "PartiallyInvalid=True(UnsupportedValue)" in evil and value not in text, (where, evil)
        assert "/kept" in text and "good.test" in text, where
        nginx_check(model, tmp_path / where.replace(" ", "-"))
