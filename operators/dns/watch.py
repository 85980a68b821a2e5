"""`knet dns` against an API server: Kopf watches feed the record store one object at a time.

Only `@kopf.index` and `@kopf.on.event` handlers, standalone: Kopf never writes to the watched
objects (no finalizers, no annotations, no peering). The index handlers apply every listed, added
or modified object to the store and keep nothing in Kopf's indices (they return None); deletions
reach only event handlers (Kopf drops deleted objects from indices without calling the handler), so
an event handler applies them. Kopf calls no event handler before every index handler of the
initial listings ran, so the first event (there is always one: the `default` and `kube-system`
Namespaces) marks the store synced, which is what /ready reports. Deletions missed while no watch
was open are pruned by a periodic metadata-only listing (`resync.py`).

The `DNSConfig` named `default` (knet.io/v1alpha1) reconfigures the server when its CRD exists; if
it does not, Kopf's one initial resource scan skips it and the defaults (plus --cluster-domain)
apply. Resource scanning is otherwise off, so the operator needs no RBAC beyond list/watch of the
five resources.
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

from operators.agent import login
from operators.dns import nodelocal, resync
from operators.dns.config import DEFAULT_DOMAIN, GROUP, DNSConfig, Server, parse_dns_config
from operators.dns.records import RecordStore
from operators.dns.server import DNSServer
from operators.kube.services import SERVICE_NAME_LABEL
from operators.kube.watching import observe_only

log = logging.getLogger("knet.dns")

BATCH_WINDOW = 0.01  # seconds Kopf waits for more events on one object: small, a new Service must resolve in 1s
WATCHED: tuple[tuple[str, str, dict[str, Any]], ...] = (  # (group/version, plural, Kopf filters)
    ("v1", "namespaces", {}),
    ("v1", "services", {}),
    ("discovery.k8s.io/v1", "endpointslices", {"labels": {SERVICE_NAME_LABEL: kopf.PRESENT}}),
    ("v1", "pods", {}),
)
DNSCONFIG = (f"{GROUP}/v1alpha1", "dnsconfigs", {"field": "metadata.name", "value": "default"})


@dataclass(frozen=True)
class Options:
    listen: str
    http: tuple[str, ...]
    api_server: str | None
    kubeconfig: str | None
    cluster_domain: str = DEFAULT_DOMAIN
    nameservers: tuple[str, ...] = ()
    resync_period: float = resync.PERIOD
    forward_to: tuple[Server, ...] = ()  # node-local mode: every name outside the cluster zones goes there


def configure(settings: kopf.OperatorSettings) -> None:
    """A read-only watcher: no scanning (no RBAC on CRDs), no Events, retries forever, fast batching."""
    observe_only(settings)
    settings.batching.batch_window = BATCH_WINDOW


class Feed:
    """What the handlers do with an object: apply it to the store, or reconfigure from a DNSConfig."""

    def __init__(self, server: DNSServer, cluster_domain: str = DEFAULT_DOMAIN,
                 forward_to: tuple[Server, ...] = ()) -> None:
        self.server = server
        self.store = server.store
        self.cluster_domain = cluster_domain
        self.forward_to = forward_to
        self.pruner = resync.Pruner(self.store.keys, self._delete)

    def apply(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        for problem in self.store.apply(dict(body), deleted=deleted):
            log.warning("%s", problem)
        md = body.get("metadata") or {}
        self.pruner.applied(str(body.get("kind")), (md.get("namespace", ""), md.get("name", "")))

    def _delete(self, kind: str, key: tuple[str, str]) -> None:
        self.store.apply({"kind": kind, "metadata": {"namespace": key[0], "name": key[1]}}, deleted=True)

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


def _split(api: str) -> tuple[str, str]:
    group, _, version = api.rpartition("/")
    return group, version


def build_registry(feed: Feed, credentials: kubernetes.client.Configuration) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    @kopf.on.login(registry=registry)
    def authenticate(**_: Any) -> kopf.ConnectionInfo:
        return login.connection_info(credentials)

    async def index(body: kopf.Body, **_: Any) -> None:
        feed.apply(body)

    async def event(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            feed.apply(body, deleted=True)
        feed.synced()

    for api, plural, filters in WATCHED:
        group, version = _split(api)
        kopf.index(group, version, plural, id=f"{plural}-store", registry=registry, **filters)(index)
        kopf.on.event(group, version, plural, id=f"{plural}-deleted", registry=registry, **filters)(event)

    async def dnsconfig_index(body: kopf.Body, **_: Any) -> None:
        feed.dnsconfig(body)

    async def dnsconfig_event(type: str | None, **_: Any) -> None:
        if type == "DELETED":
            feed.dnsconfig(None)

    group, version = _split(DNSCONFIG[0])
    kopf.index(group, version, DNSCONFIG[1], id="dnsconfig", registry=registry, **DNSCONFIG[2])(dnsconfig_index)
    kopf.on.event(group, version, DNSCONFIG[1], id="dnsconfig-deleted", registry=registry,
                  **DNSCONFIG[2])(dnsconfig_event)
    return registry


async def run(options: Options) -> None:
    """Serve DNS and health from the start (not ready until synced), watch the API until a signal stops Kopf."""
    credentials = login.configuration(options.api_server, options.kubeconfig)
    config, _ = parse_dns_config(None, options.cluster_domain)
    server = DNSServer(RecordStore(config, nameservers=options.nameservers), config)
    feed = Feed(server, options.cluster_domain, options.forward_to)
    server.configure(feed.adapt(config))
    host, port = await server.start(options.listen)
    log.info("serving %s on %s:%d (udp, tcp), API server %s", ", ".join(config.zones), host, port, credentials.host)
    for addr in options.http:
        log.info("health, readiness and metrics on %s:%d", *await server.start_http(addr))
    pruning = asyncio.create_task(feed.pruner.run(resync.api_lister(credentials), lambda: feed.store.synced,
                                                  options.resync_period), name="dns resync")
    try:
        await kopf.operator(registry=build_registry(feed, credentials), standalone=True, clusterwide=True)
    finally:
        pruning.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pruning
        await server.stop()
