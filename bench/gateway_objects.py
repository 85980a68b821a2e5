"""The gateway benchmark's objects: a GatewayClass of knet's, one Gateway with an HTTP listener, and HTTPRoutes
to the ingress benchmark's backend Service (`bench.ingress_nginx.backend_objects`), so that the Ingress and
the HTTPRoute benches measure the same route to the same backend."""

from __future__ import annotations

from bench.ingress_nginx import HOST, backend_objects

GATEWAY_CLASS = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "knet"},
                 "spec": {"controllerName": "knet.io/gateway-nginx"}}


def gateway(port: int) -> dict:
    """The Gateway `bench/web`: one HTTP listener on `port`, routes from its own namespace."""
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "web", "namespace": "bench", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"gatewayClassName": "knet", "listeners": [{"name": "http", "port": port, "protocol": "HTTP"}]}}


def http_route(name: str, host: str) -> dict:
    """An HTTPRoute for `host`, any path (PathPrefix /), to the Service `web`."""
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "bench", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"parentRefs": [{"name": "web"}], "hostnames": [host],
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                "backendRefs": [{"name": "web", "port": 80}]}]}}


def gateway_objects(ports: tuple[int, ...], listener_port: int, route: bool = True) -> list[dict]:
    """The class, the Gateway, the backend whose endpoints are `ports` and (with `route`) the HTTPRoute `web`
    for bench.test."""
    routes = [http_route("web", HOST)] if route else []
    return [GATEWAY_CLASS, gateway(listener_port), *backend_objects(ports), *routes]
