"""The agent's HTTP endpoints, answering like kube-proxy's: /metrics (10249), /healthz, /livez and /readyz
(10256), and one health-check node port per `externalTrafficPolicy: Local` LoadBalancer Service.

The response bodies are pure functions. A load balancer probes a healthCheckNodePort to learn whether
this node has local endpoints: 200 when it has (and the proxy is healthy), else 503, with kube-proxy's
JSON body and its `X-Load-Balancing-Endpoint-Weight` header.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from operators.proxy.model import HealthCheck

log = logging.getLogger(__name__)
JSON_HEADERS = {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"}


def parse_addr(addr: str) -> tuple[str, int]:
    """`0.0.0.0:10249`, `[::]:10249` or `:10249` -> (host, port); raises ValueError."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{addr!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True)
class Status:
    """What /healthz and /readyz report."""

    healthy: bool
    ready: bool  # the rules were fully programmed once
    last_updated: datetime.datetime | None  # the last successful sync
    node_eligible: bool  # our Node exists and is not being deleted


def _stamp(t: datetime.datetime | None) -> str:
    return t.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if t else ""


def healthz(status: Status, now: datetime.datetime, with_node: bool = True) -> tuple[int, str]:
    """kube-proxy's body: a healthy proxy reports lastUpdated = now (its compatibility rule)."""
    healthy = status.healthy and (status.node_eligible or not with_node)
    last = now if healthy else status.last_updated
    body = f'{{"lastUpdated": "{_stamp(last)}","currentTime": "{_stamp(now)}"'
    body += f', "nodeEligible": {str(status.node_eligible).lower()}}}' if with_node else "}"
    return (200 if healthy else 503), body


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


class StatusServers:
    """/metrics on one address, /healthz /livez /readyz on another (kube-proxy's 10249 and 10256)."""

    def __init__(self, registry: CollectorRegistry, status: Callable[[], Status]) -> None:
        self.registry = registry
        self.status = status
        self.runners: list[web.AppRunner] = []

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        code, body = healthz(self.status(), datetime.datetime.now(datetime.UTC), request.path == "/healthz")
        return web.Response(status=code, text=body, headers=JSON_HEADERS)

    async def _readyz(self, _: web.Request) -> web.Response:
        ready = self.status().ready
        return web.Response(status=200 if ready else 503, text="ok\n" if ready else "not synced yet\n")

    async def _serve(self, app: web.Application, addr: str) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self.runners.append(runner)
        await web.TCPSite(runner, *parse_addr(addr)).start()

    async def start(self, metrics_addr: str, health_addr: str) -> None:
        metrics = web.Application()
        metrics.router.add_get("/metrics", self._metrics)
        health = web.Application()
        health.router.add_get("/healthz", self._healthz)
        health.router.add_get("/livez", self._healthz)
        health.router.add_get("/readyz", self._readyz)
        await self._serve(metrics, metrics_addr)
        await self._serve(health, health_addr)

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        self.runners.clear()


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
