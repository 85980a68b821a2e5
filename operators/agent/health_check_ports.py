"""The agent's health-check node ports: one per `externalTrafficPolicy: Local` LoadBalancer Service.

A load balancer probes a healthCheckNodePort to learn whether this node has local endpoints: 200 when it
has (and the proxy is healthy), else 503, with kube-proxy's JSON body and its
`X-Load-Balancing-Endpoint-Weight` header. The body is a pure function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from operators.proxy.model import HealthCheck
from operators.runtime.servers import JSON_HEADERS

log = logging.getLogger(__name__)


def service_health(check: HealthCheck, proxy_healthy: bool) -> tuple[int, dict[str, str], str]:
    """A healthCheckNodePort's answer, byte for byte kube-proxy's (it validates namespace/name first)."""
    body = "\n".join([
        "{",
        '\t"service": {',
        f'\t\t"namespace": "{check.namespace}",',
        f'\t\t"name": "{check.name}"',
        "\t},",
        f'\t"localEndpoints": {check.local_endpoints},',
        f'\t"serviceProxyHealthy": {str(proxy_healthy).lower()}',
        "}",
    ])
    headers = {**JSON_HEADERS, "X-Load-Balancing-Endpoint-Weight": str(check.local_endpoints)}
    return (200 if check.local_endpoints and proxy_healthy else 503), headers, body


class HealthCheckPorts:
    """One listener per healthCheckNodePort of the last applied model, on every local address."""

    def __init__(self, proxy_healthy: Callable[[], bool]) -> None:
        self.proxy_healthy = proxy_healthy
        self.checks: dict[int, HealthCheck] = {}
        self.sites: dict[int, web.TCPSite] = {}
        self.runner: web.AppRunner | None = None

    async def _answer(self, request: web.Request) -> web.Response:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        check = self.checks.get(sockname[1]) if sockname else None
        if check is None:
            return web.Response(status=404)
        code, headers, body = service_health(check, self.proxy_healthy())
        return web.Response(status=code, text=body, headers=headers)

    async def update(self, checks: tuple[HealthCheck, ...]) -> list[int]:
        """Serve exactly these ports (counts updated in place); the ports that could not be opened."""
        if self.runner is None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._answer)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
        self.checks = {c.node_port: c for c in checks}
        for port in set(self.sites) - set(self.checks):
            await self.sites.pop(port).stop()
        failed = []
        for port in sorted(set(self.checks) - set(self.sites)):
            site = web.TCPSite(self.runner, None, port)
            try:
                await site.start()
            except OSError as e:
                log.warning("cannot serve healthCheckNodePort %d: %s", port, e)
                failed.append(port)
            else:
                self.sites[port] = site
        return failed

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        self.sites.clear()
