"""`knet controller`: informers feeding the controller's sync loop, inside a Kopf operator that keeps the
lifecycle, the login and the peering.

The controller writes the status of what it watches itself; nothing else writes to a watched object.
With a peering name every replica joins that ClusterKopfPeering with its own random priority; every
replica watches, and the sync loop asks the peering object before writing whether this replica is the
one to act (controller.py, leader.py).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from operators.controller.controller import GROUP, VERSION, Controller, Metrics, Peering, Views
from operators.controller.pools import LBService, parse_lb_service
from operators.kube.client import Client
from operators.kube.informer import Resource
from operators.runtime import login
from operators.runtime import operator as runtime_operator
from operators.runtime.events import EventRecorder
from operators.runtime.schedule import Periods
from operators.runtime.servers import Status, StatusServers
from operators.runtime.store import ObjectRef, ref_of
from operators.runtime.watches import Watches

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


def _compact(body: Mapping[str, Any]) -> dict[str, Any]:
    """What pools and DNSConfigs need of their object (the status, to write only what changed)."""
    md = body.get("metadata") or {}
    return copy.deepcopy({"metadata": {k: md.get(k) for k in ("name", "uid", "generation", "creationTimestamp")},
                          "spec": dict(body.get("spec") or {}), "status": dict(body.get("status") or {})})


def _service(body: Mapping[str, Any]) -> tuple[LBService, ObjectRef]:
    return parse_lb_service(body), ref_of(body, "v1", "Service")


def _namespace(body: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    md = body.get("metadata") or {}
    return str(md.get("name") or ""), dict(md.get("labels") or {})


def watches(client: Client, controller: Controller) -> Watches:
    """The four kinds the controller reads, each through an informer."""
    w = Watches(client, controller.changed)
    api = f"{GROUP}/{VERSION}"
    controller.attach(Views(services=w.index(Resource("v1", "services"), _service),
                            namespaces=w.index(Resource("v1", "namespaces"), _namespace),
                            pools=w.index(Resource(api, "loadbalancerippools"), _compact),
                            dnsconfigs=w.index(Resource(api, "dnsconfigs"), _compact)))
    return w


def build_registry(credentials: login.Credentials) -> kopf.OperatorRegistry:
    """Kopf keeps the lifecycle, the login and the peering."""
    return runtime_operator.registry(credentials)


async def run(options: Options) -> None:
    """Serve metrics and health, run the sync loop and the watches until a signal stops Kopf."""
    credentials = login.credentials(options.api_server, options.kubeconfig)
    client = Client(credentials)
    metrics = Metrics()
    controller = Controller(client, EventRecorder(client, COMPONENT, options.host), metrics, options.peering,
                            options.coredns, options.periods)

    def health() -> Status:
        last = datetime.datetime.fromtimestamp(controller.last_sync, datetime.UTC) if controller.last_sync else None
        # A standby is ready (it is there to take over); the active replica once it synced.
        return Status(healthy=True, ready=controller.synced or not controller.active, last_updated=last,
                      node_eligible=True)

    servers = StatusServers(metrics.registry, health)
    await servers.start(options.metrics_addr, options.health_addr)
    tasks = [asyncio.create_task(controller.run(), name="controller sync loop"),
             asyncio.create_task(watches(client, controller).run(), name="informers")]
    peering = options.peering
    log.info("knet controller %s (peering %s, priority %d), API server %s", peering.identity,
             peering.name or "none: standalone", peering.priority, credentials.server)
    try:
        await kopf.operator(registry=build_registry(credentials), clusterwide=True,
                            standalone=not peering.name, peering_name=peering.name or None,
                            priority=peering.priority, identity=peering.identity)  # type: ignore[arg-type]
    finally:
        await runtime_operator.cancel(tasks)
        await servers.stop()
        await client.close()
