"""`knet agent`: informers feeding the proxy's, the NetworkPolicy and the CNI loops, inside a standalone
Kopf operator run on every node.

The watched objects (Services, EndpointSlices, Pods, Namespaces, NetworkPolicies and the Nodes) come
through `operators.kube.informer` (one list, then a watch), parsed at once into compact views; Kopf's
per-object workers made its initial listing quadratic. Kopf keeps the lifecycle (login, signals) and
one small watch, the ClusterNetworkConfig. Nothing here writes to the watched objects.

Kopf is set up for a node agent: standalone (no peering), no resource scanning (which would need
RBAC on CRDs and namespaces), no Kubernetes Events from log lines (ours are explicit), API requests
retried forever (losing the API server must not stop the agent) and watch timeouts that notice a
silently dead connection; the informers retry forever too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kopf

from operators.agent import announce, config, conntrack_timeouts, status, store
from operators.agent.announce import Announcer
from operators.agent.cni_metrics import CniMetrics
from operators.agent.metrics import Metrics
from operators.agent.netpol import NetpolAgent, namespace_entry, pod_entry, policy_entry
from operators.agent.netpol_metrics import NetpolMetrics
from operators.agent.proxy import ProxyAgent
from operators.agent.uninstall import DaemonSetWatch
from operators.cni import conflist
from operators.kube import informer
from operators.kube.client import Client
from operators.kube.informer import Index, Resource
from operators.kube.services import SERVICE_NAME_LABEL, Problem
from operators.proxy.model import ProxyConfig
from operators.runtime import login
from operators.runtime import operator as runtime_operator
from operators.runtime.events import EventRecorder
from operators.runtime.loop import SyncLoop
from operators.runtime.schedule import Periods
from operators.runtime.servers import StatusServers

if TYPE_CHECKING:
    from operators.agent.cni import CniAgent

log = logging.getLogger(__name__)
COMPONENT = "knet-agent"  # in the Events the agent posts


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
    proxy: bool = True  # program Services (table inet knet-proxy); off where kube-proxy does it
    conntrack_timeouts: Mapping[str, int] = field(default_factory=dict)  # conntrack_timeouts.py; the proxy's
    network_policy: bool = True  # enforce NetworkPolicy (table inet knet-netpol) too
    config_file: Mapping[str, Any] | None = None  # `--config` keys, under ClusterNetworkConfig's
    cni: bool = False  # CNI mode (operators/agent/cni.py): conflist, peer routes, table inet knet-cni
    cni_conflist: str = conflist.DEFAULT_PATH
    cni_mtu: int | None = None  # None: the MTU of the link holding the node's InternalIP
    daemonset: DaemonSetWatch | None = None  # the agent's own DaemonSet, watched (uninstall.py)


class Feeds:
    """The informers of the proxy's and the NetworkPolicy loop's objects, and the indices they fill.

    Neither loop hears of a change before every informer listed its kind in full: a half-listed
    cluster would reject traffic to Services whose slices were not seen yet, or isolate pods whose
    policies were not seen yet. The first notice after that starts both loops (`changed` sets their
    `listed`).

    One informer watches the Nodes for all three sides: every Node when the proxy (no Service's
    externalIP may take any Node's address) or CNI mode (routes to every peer) runs, else this node alone.
    A Node's change starts a sync only when its view changed (addresses, podCIDRs), not at each
    heartbeat, and the NetworkPolicy side hears of this node alone. The CNI side waits for the Nodes'
    listing alone: until it writes the conflist, the node is NotReady."""

    def __init__(self, client: Client, node: str, agent: ProxyAgent | None, netpol: NetpolAgent | None,
                 cni: CniAgent | None = None, reporter: status.NodeReporter | None = None) -> None:
        self.agent, self.netpol, self.cni, self.listed, self.name = agent, netpol, cni, False, node
        self.node = Index(store.node_entry, self.node_changed)
        self.peers = Index(announce.peer_of, lambda *_: reporter.wake.set()) if reporter is not None else None
        if reporter is not None and self.peers is not None:
            reporter.attach(self.peers)
        own = Resource("v1", "nodes", field_selector=f"metadata.name={node}")
        nodes = Resource("v1", "nodes") if agent is not None or cni is not None else own
        self.nodes = informer.Informer(client, nodes, self.node_seen)
        sources: list[tuple[Resource, Index]] = []
        if agent is not None:
            views = store.ProxyStore(self.node)  # collects the change set each sync hands to the model
            self.services, self.slices = views.services, views.slices
            self.services.changed = self.when_listed(lambda *_: agent.changed())
            self.slices.changed = self.when_listed(self.slice_changed)
            sources += [(Resource("v1", "services"), self.services),
                        (Resource("discovery.k8s.io/v1", "endpointslices", label_selector=SERVICE_NAME_LABEL),
                         self.slices)]
            agent.attach(views)
        if netpol is not None:
            tell_netpol = self.when_listed(lambda *_: netpol.changed())
            policies, pods, namespaces = (Index(entry, tell_netpol) for entry in (policy_entry, pod_entry,
                                                                                  namespace_entry))
            sources += [(Resource("networking.k8s.io/v1", "networkpolicies"), policies),
                        (Resource("v1", "pods"), pods), (Resource("v1", "namespaces"), namespaces)]
            netpol.attach(policies, pods, namespaces, self.node)
        self.informers = [self.nodes, *(informer.Informer(client, r, index.handle) for r, index in sources)]
        if cni is not None:
            cni.attach(self.node)

    def node_seen(self, kind: str, body: Mapping[str, Any]) -> None:
        self.node.handle(kind, body)
        if self.peers is not None:
            self.peers.handle(kind, body)

    def when_listed(self, notify: Callable[..., None]) -> Callable[..., None]:
        def tell(*args: Any) -> None:
            if self.listed:
                notify(*args)
        return tell

    async def cni_start(self, cni: CniAgent) -> None:
        await self.nodes.listed.wait()
        log.info("listed %d nodes for the CNI side", len(self.nodes.known))
        cni.changed()

    def slice_changed(self, kind: str, body: Mapping[str, Any]) -> None:
        uid = str((body.get("metadata") or {}).get("uid") or "")
        assert self.agent is not None  # slices are watched for the proxy alone
        self.agent.slice_changed(uid, store.trigger_time(body), deleted=kind == "DELETED")

    def node_changed(self, kind: str = "", body: Mapping[str, Any] | None = None) -> None:
        """A Node's view changed (no `body`: every side's first notice, once everything is listed)."""
        if self.cni is not None and self.nodes.listed.is_set():
            self.cni.changed()
        if not self.listed:
            return
        if self.agent is not None:
            self.agent.changed()
        if self.netpol is not None and (body is None or (body.get("metadata") or {}).get("name") == self.name):
            self.netpol.changed()

    async def run(self) -> None:
        tasks = [asyncio.create_task(i.run(), name=f"informer {i.name}") for i in self.informers]
        if self.cni is not None:
            tasks.append(asyncio.create_task(self.cni_start(self.cni), name="cni start"))
        try:
            await asyncio.gather(*(i.listed.wait() for i in self.informers))
            self.listed = True
            if self.agent is not None:
                log.info("listed %d services, %d endpointslices", len(self.services.entries),
                         len(self.slices.entries))
            self.node_changed()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()


def build_registry(credentials: login.Credentials, network_config: config.Settings | None = None
                   ) -> kopf.OperatorRegistry:
    """Kopf keeps the agent's lifecycle and its one small watch (the ClusterNetworkConfig)."""
    registry = runtime_operator.registry(credentials)
    if network_config is not None:
        config.add_watch(registry, network_config)
    return registry


async def run(options: Options) -> None:
    """Serve metrics and health, run the sync loops and the watches until a signal stops Kopf."""
    credentials = login.credentials(options.api_server, options.kubeconfig)
    client = Client(credentials)
    events = EventRecorder(client, COMPONENT, options.node)
    metrics = Metrics()
    agent = None
    if options.proxy:
        agent = ProxyAgent(options.node, options.config, options.periods, metrics, events, options.config_problems)
    netpol = None
    if options.network_policy:
        netpol = NetpolAgent(options.node, options.periods, NetpolMetrics(metrics.registry), events)
    settings = config.Settings(options.config_file, options.periods)
    if agent is not None:
        settings.listen(lambda cfg: agent.configure(cfg.proxy, cfg.periods, cfg.problems))
    if netpol is not None:
        settings.listen(lambda cfg: netpol.configure(cfg.policy, cfg.periods))
    cni = None
    if options.cni:
        from operators.agent.cni import CniAgent  # with pyroute2, for the routes: in CNI mode alone

        cni = CniAgent(options.node, Path(options.cni_conflist), options.cni_mtu, options.periods,
                       CniMetrics(metrics.registry), events)
        settings.listen(lambda cfg: cni.configure(cfg.proxy.cluster_cidrs, cfg.periods))
    found, body = await config.read(client)  # before the first sync, so that it uses the configured mode
    if found:
        settings.update(body)
    reporter = None
    if agent is not None:
        conntrack_timeouts.apply(options.conntrack_timeouts)
        reporter = status.NodeReporter(agent, settings, status.StatusWriter(client, options.node), Announcer())
    loops: list[SyncLoop] = [loop for loop in (agent, netpol, cni) if loop is not None]
    servers = StatusServers(metrics.registry, loops[0].status)  # the first side: the CLI asks for one
    await servers.start(options.metrics_addr, options.health_addr)
    tasks = [asyncio.create_task(loop.run(), name=f"{loop.side} sync loop") for loop in loops]
    tasks.append(asyncio.create_task(Feeds(client, options.node, agent, netpol, cni, reporter).run(), name="informers"))
    if reporter is not None:
        tasks.append(asyncio.create_task(reporter.run(), name="node reports"))
    if options.daemonset is not None:
        watch = informer.Informer(client, options.daemonset.resource, options.daemonset.handle, name="daemonset")
        tasks.append(asyncio.create_task(watch.run(), name="informer daemonset"))
    log.info("knet agent on node %s (%s), API server %s", options.node, ", ".join(loop.side for loop in loops),
             credentials.server)
    try:
        await kopf.operator(registry=build_registry(credentials, settings), standalone=True,
                            clusterwide=True)
    finally:
        await runtime_operator.cancel(tasks)
        await client.close()
        if agent is not None:
            await agent.stop()
        await servers.stop()
