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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes

from operators.agent import config, login, status, store
from operators.agent.announce import Announcer
from operators.agent.events import EventRecorder
from operators.agent.metrics import Metrics
from operators.agent.netpol import NetpolAgent, PolicyEventRecorder, namespace_entry, pod_entry, policy_entry
from operators.agent.netpol_metrics import NetpolMetrics
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
    network_policy: bool = True  # enforce NetworkPolicy (table inet knet-netpol) too
    config_file: Mapping[str, Any] | None = None  # `--config` keys, under ClusterNetworkConfig's


def build_registry(agent: ProxyAgent, credentials: kubernetes.client.Configuration,
                   netpol: NetpolAgent | None = None, network_config: config.Settings | None = None,
                   reporter: status.NodeReporter | None = None) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    own_node = {"field": "metadata.name", "value": agent.node}

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, services: Any, endpointslices: Any, nodes: Any,
                      **kwargs: Any) -> None:
        observe_only(settings)
        agent.attach(services, endpointslices, nodes)
        if reporter is not None:
            reporter.attach(kwargs["peers"])
        if network_config is not None:  # before the first sync, so that it uses the configured mode
            found, body = await config.read(credentials)
            if found:
                network_config.update(body)
        if netpol is not None:
            netpol.attach(kwargs["networkpolicies"], kwargs["pods"], kwargs["namespaces"], nodes)

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
        if netpol is not None:
            netpol.changed()

    if netpol is not None:
        add_netpol_watches(registry, netpol)
    if network_config is not None:
        config.add_watch(registry, network_config)
    if reporter is not None:
        status.add_watches(registry, reporter)
    return registry


def add_netpol_watches(registry: kopf.OperatorRegistry, netpol: NetpolAgent) -> None:
    """NetworkPolicies, Pods (all of them: peers live on every node) and Namespaces, as compact views."""
    watched = (("networking.k8s.io", "v1", "networkpolicies", policy_entry), ("", "v1", "pods", pod_entry),
               ("", "v1", "namespaces", namespace_entry))
    for group, version, plural, entry in watched:
        resource = (group, version, plural) if group else (version, plural)

        @kopf.index(*resource, id=plural, registry=registry)
        async def index(body: kopf.Body, entry: Any = entry, **_: Any) -> store.Entry[Any]:
            return entry(body)

        @kopf.on.event(*resource, id=f"{plural}-changed", registry=registry)
        async def event(**_: Any) -> None:
            netpol.changed()


async def run(options: Options) -> None:
    """Serve metrics and health, run the sync loop and the watches until a signal stops Kopf."""
    credentials = login.configuration(options.api_server, options.kubeconfig)
    metrics = Metrics()
    agent = ProxyAgent(options.node, options.config, options.periods, metrics,
                       EventRecorder(credentials, options.node), options.config_problems)
    netpol = None
    if options.network_policy:
        netpol = NetpolAgent(options.node, options.periods, NetpolMetrics(metrics.registry),
                             PolicyEventRecorder(credentials, options.node))
    settings = config.Settings(options.config_file, options.periods)

    def configure(cfg: config.AgentConfig) -> None:
        agent.config, agent.periods, agent.config_problems = cfg.proxy, cfg.periods, cfg.problems
        if agent.listed.is_set():
            agent.changed()

    settings.listen(configure)
    if netpol is not None:
        settings.listen(lambda cfg: netpol.configure(cfg.policy, cfg.periods))
    reporter = status.NodeReporter(agent, settings, status.StatusWriter(credentials, options.node), Announcer())
    servers = StatusServers(metrics.registry, agent.status)
    await servers.start(options.metrics_addr, options.health_addr)
    loop = asyncio.create_task(agent.run(), name="proxy sync loop")
    report_loop = asyncio.create_task(reporter.run(), name="node reports")
    netpol_loop = asyncio.create_task(netpol.run(), name="netpol sync loop") if netpol else None
    log.info("knet agent on node %s, API server %s", options.node, credentials.host)
    try:
        await kopf.operator(registry=build_registry(agent, credentials, netpol, settings, reporter),
                            standalone=True, clusterwide=True)
    finally:
        for task in (loop, netpol_loop, report_loop):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await agent.stop()
        await servers.stop()
