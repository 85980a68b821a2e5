"""`knet agent` as a Kopf operator: watches feeding the proxy's sync loop, run standalone on every node.

Only `@kopf.index` and `@kopf.on.event` handlers: Kopf then never patches the watched objects (no
finalizers, no annotations). The indices hold the parsed entries; the event handlers only wake the
sync loop. Kopf runs no event handler before every index finished its initial listing, which is how
the loop knows the cluster was listed in full.

Kopf is set up for a node agent: standalone (no peering), no resource scanning (which would need
RBAC on CRDs and namespaces), no Kubernetes Events from log lines (ours are explicit), API requests
retried forever (losing the API server must not stop the agent) and watch timeouts that notice a
silently dead connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes

from operators.agent import login, store
from operators.agent.events import EventRecorder
from operators.agent.metrics import Metrics
from operators.agent.proxy import ProxyAgent
from operators.agent.schedule import Periods
from operators.agent.servers import StatusServers
from operators.kube.services import SERVICE_NAME_LABEL, Problem
from operators.kube.watching import observe_only
from operators.proxy.model import ProxyConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    node: str
    api_server: str | None
    kubeconfig: str | None
    metrics_addr: str
    health_addr: str
    periods: Periods
    config: ProxyConfig
    config_problems: tuple[Problem, ...] = ()


def build_registry(agent: ProxyAgent, credentials: kubernetes.client.Configuration) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    own_node = {"field": "metadata.name", "value": agent.node}

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, services: Any, endpointslices: Any, nodes: Any,
                      **_: Any) -> None:
        observe_only(settings)
        agent.attach(services, endpointslices, nodes)

    @kopf.on.login(registry=registry)
    def authenticate(**_: Any) -> kopf.ConnectionInfo:
        return login.connection_info(credentials)

    @kopf.index("v1", "services", id="services", registry=registry)
    async def services(body: kopf.Body, **_: Any) -> store.Entry[Any]:
        return store.service_entry(body)

    @kopf.index("discovery.k8s.io", "v1", "endpointslices", id="endpointslices",
                labels={SERVICE_NAME_LABEL: kopf.PRESENT}, registry=registry)
    async def endpointslices(body: kopf.Body, **_: Any) -> store.Entry[Any]:
        return store.slice_entry(body)

    @kopf.index("v1", "nodes", id="nodes", registry=registry, **own_node)
    async def nodes(body: kopf.Body, **_: Any) -> store.Entry[Any]:
        return store.node_entry(body)

    @kopf.on.event("v1", "services", registry=registry)
    async def service_changed(**_: Any) -> None:
        agent.changed()

    @kopf.on.event("discovery.k8s.io", "v1", "endpointslices", labels={SERVICE_NAME_LABEL: kopf.PRESENT},
                   registry=registry)
    async def slice_changed(body: kopf.Body, uid: str, type: str | None, **_: Any) -> None:
        agent.slice_changed(uid, store.trigger_time(body), deleted=type == "DELETED")

    @kopf.on.event("v1", "nodes", registry=registry, **own_node)
    async def node_changed(**_: Any) -> None:
        agent.changed()

    return registry


async def run(options: Options) -> None:
    """Serve metrics and health, run the sync loop and the watches until a signal stops Kopf."""
    credentials = login.configuration(options.api_server, options.kubeconfig)
    metrics = Metrics()
    agent = ProxyAgent(options.node, options.config, options.periods, metrics,
                       EventRecorder(credentials, options.node), options.config_problems)
    servers = StatusServers(metrics.registry, agent.status)
    await servers.start(options.metrics_addr, options.health_addr)
    loop = asyncio.create_task(agent.run(), name="proxy sync loop")
    log.info("knet agent on node %s, API server %s", options.node, credentials.host)
    try:
        await kopf.operator(registry=build_registry(agent, credentials), standalone=True, clusterwide=True)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await agent.stop()
        await servers.stop()
