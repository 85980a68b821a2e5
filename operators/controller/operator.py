"""`knet controller` as a Kopf operator: indices feeding the controller's sync loop, Kopf peering.

Only `@kopf.index` and `@kopf.on.event` handlers, so Kopf never patches the watched objects; the
controller writes their status itself. With a peering name every replica joins that
ClusterKopfPeering with its own random priority: Kopf pauses the watches of all but the highest, and
the sync loop asks the same of the peering object before writing (controller.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import logging
from dataclasses import dataclass
from typing import Any

import kopf

from operators.controller.controller import GROUP, VERSION, Controller, Metrics, Peering
from operators.controller.pools import parse_lb_service
from operators.kube.client import Client
from operators.kube.watching import observe_only, waker
from operators.runtime import login
from operators.runtime.events import EventRecorder
from operators.runtime.schedule import Periods
from operators.runtime.servers import Status, StatusServers
from operators.runtime.store import ObjectRef

log = logging.getLogger(__name__)
COMPONENT = "knet-controller"


@dataclass(frozen=True)
class Options:
    api_server: str | None
    kubeconfig: str | None
    metrics_addr: str
    health_addr: str
    peering: Peering
    coredns: tuple[str, str] | None
    host: str
    periods: Periods


def _compact(body: kopf.Body) -> dict[str, Any]:
    """What pools and DNSConfigs need of their object (the status, to write only what changed)."""
    md = body.get("metadata") or {}
    return copy.deepcopy({"metadata": {k: md.get(k) for k in ("name", "uid", "generation", "creationTimestamp")},
                          "spec": dict(body.get("spec") or {}), "status": dict(body.get("status") or {})})


def build_registry(controller: Controller, credentials: login.Credentials) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        observe_only(settings)
        settings.scanning.disabled = False  # notice knet's CRDs installed after the controller started
        controller.attach(**{k: kwargs[k] for k in ("services", "pools", "namespaces", "dnsconfigs")})

    @kopf.on.login(registry=registry)
    def authenticate(**_: Any) -> kopf.ConnectionInfo:
        return credentials.connection_info()

    @kopf.index("v1", "services", id="services", registry=registry)
    async def services(body: kopf.Body, namespace: str, name: str, uid: str, **_: Any) -> dict[tuple[str, str], Any]:
        return {(namespace, name): (parse_lb_service(body), ObjectRef("v1", "Service", namespace, name, uid))}

    @kopf.index("v1", "namespaces", id="namespaces", registry=registry)
    async def namespaces(name: str, labels: kopf.Labels, **_: Any) -> dict[str, Any]:
        return {name: (name, dict(labels))}

    @kopf.index(GROUP, VERSION, "loadbalancerippools", id="pools", registry=registry)
    async def pools(body: kopf.Body, name: str, **_: Any) -> dict[str, Any]:
        return {name: _compact(body)}

    @kopf.index(GROUP, VERSION, "dnsconfigs", id="dnsconfigs", registry=registry)
    async def dnsconfigs(body: kopf.Body, name: str, **_: Any) -> dict[str, Any]:
        return {name: _compact(body)}

    for group, version, plural in (("", "v1", "services"), ("", "v1", "namespaces"),
                                   (GROUP, VERSION, "loadbalancerippools"), (GROUP, VERSION, "dnsconfigs")):
        kopf.on.event(*([group] if group else []), version, plural, registry=registry, id=f"{plural}_changed")(
            waker(controller.changed))
    return registry


async def run(options: Options) -> None:
    """Serve metrics and health, run the sync loop and the watches until a signal stops Kopf."""
    credentials = login.credentials(options.api_server, options.kubeconfig)
    client = Client(credentials)
    metrics = Metrics()
    controller = Controller(login.kubernetes_configuration(credentials), EventRecorder(client, COMPONENT, options.host),
                            metrics,
                            options.peering, options.coredns, options.periods)

    def health() -> Status:
        last = datetime.datetime.fromtimestamp(controller.last_sync, datetime.UTC) if controller.last_sync else None
        # A standby is ready (it is there to take over); the active replica once it synced.
        return Status(healthy=True, ready=controller.synced or not controller.active, last_updated=last,
                      node_eligible=True)

    servers = StatusServers(metrics.registry, health)
    await servers.start(options.metrics_addr, options.health_addr)
    task = asyncio.create_task(controller.run(), name="controller sync loop")
    peering = options.peering
    log.info("knet controller %s (peering %s, priority %d), API server %s", peering.identity,
             peering.name or "none: standalone", peering.priority, credentials.server)
    try:
        await kopf.operator(registry=build_registry(controller, credentials), clusterwide=True,
                            standalone=not peering.name, peering_name=peering.name or None,
                            priority=peering.priority, identity=peering.identity)  # type: ignore[arg-type]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await servers.stop()
        await client.close()
