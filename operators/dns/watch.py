"""`knet dns` against an API server: informers feed the record store one object at a time.

Namespaces, Services, EndpointSlices and Pods come through `operators.kube.informer` (one paged list,
then a watch from its resourceVersion): every listed, added, modified or deleted object is applied to
the store at once, and the store is marked synced (what /ready reports) once every kind was listed in
full. A watch that broke resumes where it was; one too old is replaced by a new listing that also
hands over the objects deleted meanwhile, so no record outlives its object. Kopf (standalone, never
writing to the watched objects) keeps the lifecycle and the `DNSConfig` named `default`
(knet.io/v1alpha1), which reconfigures the server when its CRD exists; if it does not, Kopf's one
initial resource scan skips it and the defaults (plus --cluster-domain) apply. Resource scanning is
otherwise off, so the server needs no RBAC beyond list/watch of the five resources.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from operators.dns import nodelocal
from operators.dns.config import DEFAULT_DOMAIN, GROUP, DNSConfig, Server, parse_dns_config
from operators.dns.records import RecordStore
from operators.dns.server import DNSServer
from operators.kube import informer
from operators.kube.client import Client
from operators.kube.informer import Resource
from operators.kube.services import SERVICE_NAME_LABEL
from operators.runtime import login
from operators.runtime import operator as runtime_operator

log = logging.getLogger("knet.dns")

WATCHED = (Resource("v1", "namespaces"), Resource("v1", "services"),
           Resource("discovery.k8s.io/v1", "endpointslices", label_selector=SERVICE_NAME_LABEL),
           Resource("v1", "pods"))
DNSCONFIG_PATH = f"/apis/{GROUP}/v1alpha1/dnsconfigs/default"  # also watched by Kopf, from start-up on


@dataclass(frozen=True)
class Options:
    listen: str
    http: tuple[str, ...]
    api_server: str | None
    kubeconfig: str | None
    cluster_domain: str = DEFAULT_DOMAIN
    nameservers: tuple[str, ...] = ()
    forward_to: tuple[Server, ...] = ()  # node-local mode: every name outside the cluster zones goes there
    rate_limit: float = 0  # UDP responses per second per source address; 0: no limit


class Feed:
    """What the handlers do with an object: apply it to the store, or reconfigure from a DNSConfig."""

    def __init__(self, server: DNSServer, cluster_domain: str = DEFAULT_DOMAIN,
                 forward_to: tuple[Server, ...] = ()) -> None:
        self.server = server
        self.store = server.store
        self.cluster_domain = cluster_domain
        self.forward_to = forward_to

    def apply(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        for problem in self.store.apply(dict(body), deleted=deleted):
            log.warning("%s", problem)

    def handle(self, kind: str, body: Mapping[str, Any]) -> None:
        """An informer's change (ADDED, MODIFIED, DELETED)."""
        self.apply(body, deleted=kind == "DELETED")

    async def watch(self, client: Client) -> None:
        """Every watched kind into the store, synced once all were listed; until cancelled."""
        self.dnsconfig(await client.read(DNSCONFIG_PATH, "DNSConfig"))  # ready with it, not with the defaults
        informers = [informer.Informer(client, resource, self.handle) for resource in WATCHED]
        tasks = [asyncio.create_task(i.run(), name=f"informer {i.name}") for i in informers]
        try:
            await asyncio.gather(*(i.listed.wait() for i in informers))
            self.synced()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    def dnsconfig(self, body: Mapping[str, Any] | None) -> None:
        """Adopt the DNSConfig (None: it was deleted, back to defaults); an invalid one is reported, still used
        for the parts that parsed, as the offline mode does."""
        config, problems = parse_dns_config(dict(body) if body is not None else None, self.cluster_domain)
        for problem in problems:
            log.warning("%s", problem)
        self.server.configure(self.adapt(config))
        log.info("DNSConfig %s: zones %s", "default" if body is not None else "(none)", ", ".join(config.zones))

    def adapt(self, config: DNSConfig) -> DNSConfig:
        return nodelocal.forwarding_to(config, self.forward_to) if self.forward_to else config

    def synced(self) -> None:
        if not self.store.synced:
            self.store.mark_synced()
            log.info("initial listings done: %s", self.store.stats())


def build_registry(feed: Feed, credentials: login.Credentials) -> kopf.OperatorRegistry:
    """Kopf's part: login, and the DNSConfig (the record store's kinds come through `Feed.watch`)."""
    registry = runtime_operator.registry(credentials)

    @kopf.index(GROUP, "v1alpha1", "dnsconfigs", id="dnsconfig", registry=registry, field="metadata.name",
                value="default")
    async def dnsconfig_index(body: kopf.Body, **_: Any) -> None:
        feed.dnsconfig(body)

    @kopf.on.event(GROUP, "v1alpha1", "dnsconfigs", id="dnsconfig-deleted", registry=registry,
                   field="metadata.name", value="default")
    async def dnsconfig_event(type: str | None, **_: Any) -> None:
        if type == "DELETED":
            feed.dnsconfig(None)

    return registry


async def run(options: Options) -> None:
    """Serve DNS and health from the start (not ready until synced), watch the API until a signal stops Kopf."""
    credentials = login.credentials(options.api_server, options.kubeconfig)
    config, _ = parse_dns_config(None, options.cluster_domain)
    server = DNSServer(RecordStore(config, nameservers=options.nameservers), config, rate_limit=options.rate_limit)
    feed = Feed(server, options.cluster_domain, options.forward_to)
    server.configure(feed.adapt(config))
    host, port = await server.start(options.listen)
    log.info("serving %s on %s:%d (udp, tcp), API server %s", ", ".join(config.zones), host, port, credentials.server)
    for addr in options.http:
        log.info("health, readiness and metrics on %s:%d", *await server.start_http(addr))
    client = Client(credentials)
    watching = asyncio.create_task(feed.watch(client), name="dns informers")
    try:
        await kopf.operator(registry=build_registry(feed, credentials), standalone=True, clusterwide=True)
    finally:
        await runtime_operator.cancel([watching])
        await client.close()
        await server.stop()
