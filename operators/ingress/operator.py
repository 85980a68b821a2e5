"""`knet ingress` as a Kopf operator: watches feeding the nginx sync loop.

Only `@kopf.index` and `@kopf.on.event` handlers, so Kopf never patches the watched objects (no
finalizers, no annotations); the status of our Ingresses is written by `status.py`, not by Kopf.
The indices hold parsed views (parsing never raises, and happens once per change); the event
handlers only wake the sync loop. Kopf runs no event handler before every index finished its
initial listing, which is how the loop knows its first config is built from complete views.
Kopf's settings are the agent's: standalone, no scanning, no Events from logs, retries forever.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from operators.gateway import views as gateway_views
from operators.gateway.status import seen_of
from operators.ingress.controller import IngressController, prepare_prefix
from operators.ingress.gateway_status import GatewayStatusWriter
from operators.ingress.metrics import Metrics
from operators.ingress.model import IngressConfig
from operators.ingress.nginx import Nginx
from operators.ingress.render import Runtime
from operators.ingress.status import StatusWriter, lb_addresses
from operators.kube import ingresses as views
from operators.kube import services as api
from operators.kube.client import Client
from operators.kube.services import SERVICE_NAME_LABEL
from operators.kube.watching import waker
from operators.runtime import login
from operators.runtime import operator as runtime_operator
from operators.runtime.events import EventRecorder
from operators.runtime.schedule import Periods
from operators.runtime.servers import Status, StatusServers
from operators.runtime.store import Entry, ObjectRef

log = logging.getLogger(__name__)
COMPONENT = "knet-ingress"  # in the Events it posts
TLS = {"field": "type", "value": "kubernetes.io/tls"}
GATEWAY_API = "gateway.networking.k8s.io"
# Gateway API kinds: (version, plural, kind, parse); ReferenceGrant is served as v1beta1 in the standard channel.
GATEWAY_KINDS = (("v1", "gatewayclasses", "GatewayClass", gateway_views.parse_gateway_class),
                 ("v1", "gateways", "Gateway", gateway_views.parse_gateway),
                 ("v1", "httproutes", "HTTPRoute", gateway_views.parse_http_route),
                 ("v1beta1", "referencegrants", "ReferenceGrant", gateway_views.parse_reference_grant))


@dataclass(frozen=True)
class Options:
    api_server: str | None
    kubeconfig: str | None
    metrics_addr: str
    health_addr: str
    runtime: Runtime
    config: IngressConfig
    publish: tuple[str, ...]
    service: str
    host: str
    periods: Periods
    nginx: str = "nginx"


def entry(body: Mapping[str, Any], parse: Callable[[object], tuple[Any, list[Any]]], api_version: str,
          kind: str) -> dict[tuple[str, str], Entry[Any]]:
    """An index value: the parsed view keyed by (namespace, name)."""
    md = body.get("metadata") or {}
    ns, name = str(md.get("namespace") or ""), str(md.get("name") or "")
    view, problems = parse(body)
    return {(ns, name): Entry(view, tuple(problems), ObjectRef(api_version, kind, ns, name, str(md.get("uid") or "")))}


def build_registry(controller: IngressController, credentials: login.Credentials
                   ) -> kopf.OperatorRegistry:
    registry = runtime_operator.registry(credentials, lambda kwargs: controller.attach(**{k: kwargs[k] for k in (
        "classes", "ingresses", "ingress_lb", "services", "service_lb", "slices", "secrets", "namespaces",
        "gatewayclass_seen", "gateway_seen", "httproute_seen", *(plural for _, plural, _, _ in GATEWAY_KINDS))}))
    net, disc = "networking.k8s.io", "discovery.k8s.io"
    with_service = {SERVICE_NAME_LABEL: kopf.PRESENT}

    @kopf.index(net, "v1", "ingressclasses", id="classes", registry=registry)
    async def classes(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Entry[Any]]:
        return entry(body, views.parse_ingress_class, f"{net}/v1", "IngressClass")

    @kopf.index(net, "v1", "ingresses", id="ingresses", registry=registry)
    async def ingresses(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Entry[Any]]:
        return entry(body, views.parse_ingress, f"{net}/v1", "Ingress")

    @kopf.index(net, "v1", "ingresses", id="ingress_lb", registry=registry)
    async def ingress_lb(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[tuple[str, str], Any]:
        return {(namespace, name): (lb_addresses(body), copy.deepcopy(dict(body)))}

    @kopf.index("v1", "services", id="services", registry=registry)
    async def services(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Entry[Any]]:
        return entry(body, api.parse_service, "v1", "Service")

    @kopf.index("v1", "services", id="service_lb", registry=registry)
    async def service_lb(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[tuple[str, str], Any]:
        return {(namespace, name): lb_addresses(body)}

    @kopf.index(disc, "v1", "endpointslices", id="slices", labels=with_service, registry=registry)
    async def slices(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Entry[Any]]:
        return entry(body, api.parse_endpoint_slice, f"{disc}/v1", "EndpointSlice")

    @kopf.index("v1", "secrets", id="secrets", registry=registry, **TLS)
    async def secrets(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Entry[Any]]:
        return entry(body, views.parse_tls_secret, "v1", "Secret")

    @kopf.index("v1", "namespaces", id="namespaces", registry=registry)
    async def namespaces(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Entry[Any]]:
        return entry(body, gateway_views.parse_namespace, "v1", "Namespace")

    def gateway_index(version: str, plural: str, kind: str, parse: Callable[[object], tuple[Any, list[Any]]]
                      ) -> None:
        @kopf.index(GATEWAY_API, version, plural, id=plural, registry=registry)
        async def views_of(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Entry[Any]]:
            return entry(copy.deepcopy(dict(body)), parse, f"{GATEWAY_API}/{version}", kind)

    for version, plural, kind, parse in GATEWAY_KINDS:
        gateway_index(version, plural, kind, parse)

    def seen_index(plural: str, kind: str) -> None:
        @kopf.index(GATEWAY_API, "v1", plural, id=f"{kind.lower()}_seen", registry=registry)
        async def seen(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Any]:
            md = body.get("metadata") or {}
            key = f"{md.get('namespace')}/{md.get('name')}" if md.get("namespace") else str(md.get("name"))
            return {(kind, key): seen_of(copy.deepcopy(dict(body)))}

    for _, plural, kind, _ in GATEWAY_KINDS[:3]:
        seen_index(plural, kind)

    for group, version, plural, extra in (
            (net, "v1", "ingressclasses", {}), (net, "v1", "ingresses", {}), ("", "v1", "services", {}),
            (disc, "v1", "endpointslices", {"labels": with_service}), ("", "v1", "secrets", TLS),
            ("", "v1", "namespaces", {}), *((GATEWAY_API, v, plural, {}) for v, plural, _, _ in GATEWAY_KINDS)):
        kopf.on.event(*([group] if group else []), version, plural, registry=registry, id=f"{plural}_changed",
                      **extra)(waker(controller.changed))
    return registry


async def run(options: Options) -> None:
    """Serve metrics and health, supervise nginx, run the sync loop and the watches until a signal stops Kopf."""
    credentials = login.credentials(options.api_server, options.kubeconfig)
    client = Client(credentials)
    metrics = Metrics()
    prepare_prefix(options.runtime)
    nginx = Nginx(options.runtime, options.nginx)
    controller = IngressController(options.config, options.runtime, nginx, metrics,
                                   EventRecorder(client, COMPONENT, options.host),
                                   StatusWriter(client, metrics, options.publish, options.service),
                                   options.periods, GatewayStatusWriter(client, metrics))
    health = {"ok": False}

    def status() -> Status:
        last = datetime.datetime.fromtimestamp(controller.last_sync, datetime.UTC) if controller.last_sync else None
        return Status(healthy=health["ok"] or not controller.synced, ready=controller.synced and health["ok"],
                      last_updated=last, node_eligible=True)

    async def probe() -> None:
        while True:
            health["ok"] = await nginx.healthy()
            metrics.nginx_status(await nginx.stub_status() if health["ok"] else {})
            await asyncio.sleep(1)

    servers = StatusServers(metrics.registry, status)
    await servers.start(options.metrics_addr, options.health_addr)
    await controller.resume()
    tasks = [asyncio.create_task(controller.run(), name="ingress sync loop"),
             asyncio.create_task(nginx.supervise(controller.restarted), name="nginx supervisor"),
             asyncio.create_task(probe(), name="nginx probe")]
    log.info("knet ingress (controller %s), API server %s", options.config.controller, credentials.server)
    try:
        await kopf.operator(registry=build_registry(controller, credentials), standalone=True, clusterwide=True)
    finally:
        await runtime_operator.cancel(tasks)
        await nginx.stop()
        await servers.stop()
        await client.close()
