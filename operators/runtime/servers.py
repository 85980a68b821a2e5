"""Every component's HTTP endpoints, answering like kube-proxy's: /metrics on one address, /healthz, /livez
and /readyz on another (the agent's 10249 and 10256). The response bodies are pure functions."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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
