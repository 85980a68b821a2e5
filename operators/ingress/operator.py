"""`knet ingress`: informers feeding the nginx sync loop, inside a standalone Kopf operator that keeps the
lifecycle and the login.

Every watched kind comes through `operators.kube.informer`; its indices hold parsed views (parsing never
raises, and happens once per change), and nothing writes to a watched object but the status writers
(`status.py`, `gateway_status.py`). No sync runs before every informer listed its kind
(`operators/runtime/watches.py`), so the first config is built from complete views. A Gateway API kind
whose CRD is not installed counts as listed and empty, and is looked for again every 30 seconds.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from operators.gateway import views as gateway_views
from operators.gateway.services import held_of
from operators.gateway.status import seen_of
from operators.ingress.controller import IngressController, Watched, prepare_prefix
from operators.ingress.gateway_services import GatewayServiceWriter
from operators.ingress.gateway_status import GatewayStatusWriter
from operators.ingress.metrics import Metrics
from operators.ingress.model import IngressConfig
from operators.ingress.nginx import Nginx
from operators.ingress.render import Runtime
from operators.ingress.status import StatusWriter, lb_addresses
from operators.kube import ingresses as views
from operators.kube import services as api
from operators.kube.client import Client
from operators.kube.informer import Index, Resource
from operators.kube.services import SERVICE_NAME_LABEL
from operators.runtime import login
from operators.runtime import operator as runtime_operator
from operators.runtime.events import EventRecorder
from operators.runtime.login import Credentials
from operators.runtime.schedule import Periods
from operators.runtime.servers import Status, StatusServers
from operators.runtime.store import entry
from operators.runtime.watches import Watches

log = logging.getLogger(__name__)
COMPONENT = "knet-ingress"  # in the Events it posts
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


def _by_name(obj: Mapping[str, Any]) -> tuple[str, str]:
    md = obj.get("metadata") or {}
    return str(md.get("namespace") or ""), str(md.get("name") or "")


def _by_kind_and_key(kind: str) -> Callable[[Mapping[str, Any]], tuple[str, str]]:
    """Gateway API status views are looked up by (kind, "namespace/name" or "name")."""
    def key(obj: Mapping[str, Any]) -> tuple[str, str]:
        ns, name = _by_name(obj)
        return kind, f"{ns}/{name}" if ns else name
    return key


def watches(client: Client, controller: IngressController) -> Watches:
    """Every kind the controller reads, each through one informer; the Gateway API kinds are optional (a
    cluster without their CRDs serves Ingresses alone). Views may keep parts of the object: an informer
    hands over a freshly decoded one per event and keeps none of it (Kopf's bodies needed copies)."""
    w = Watches(client, controller.changed)
    net, disc = "networking.k8s.io/v1", "discovery.k8s.io/v1"

    def entries(resource: Resource, parse: Callable[[object], tuple[Any, list[Any]]], kind: str) -> Index:
        return Index(lambda body: entry(body, parse, resource.api, kind))

    found: dict[str, Index] = {}
    ingresses = Resource(net, "ingresses")
    found["ingresses"] = entries(ingresses, views.parse_ingress, "Ingress")
    ingress_lb = Index(lambda body: (lb_addresses(body), dict(body)), key=_by_name)
    w.watch(ingresses, found["ingresses"], ingress_lb)
    services = Resource("v1", "services")
    found["services"] = entries(services, api.parse_service, "Service")
    service_lb = Index(lb_addresses, key=_by_name)
    held = [Index(held_of, key=_by_kind_and_key("Service")), Index(held_of, key=_by_kind_and_key("EndpointSlice"))]
    w.watch(services, found["services"], service_lb, held[0])
    slices = Resource(disc, "endpointslices", label_selector=SERVICE_NAME_LABEL)
    found["slices"] = entries(slices, api.parse_endpoint_slice, "EndpointSlice")
    w.watch(slices, found["slices"], held[1])
    for name, resource, parse, kind in (
            ("classes", Resource(net, "ingressclasses"), views.parse_ingress_class, "IngressClass"),
            ("secrets", Resource("v1", "secrets", field_selector="type=kubernetes.io/tls"), views.parse_tls_secret,
             "Secret"),
            ("namespaces", Resource("v1", "namespaces"), gateway_views.parse_namespace, "Namespace")):
        found[name] = entries(resource, parse, kind)
        w.watch(resource, found[name])
    seen: list[Index] = []
    for version, plural, kind, parse in GATEWAY_KINDS:
        resource = Resource(f"{GATEWAY_API}/{version}", plural)
        found[plural] = entries(resource, parse, kind)
        status = [Index(seen_of, key=_by_kind_and_key(kind))] \
            if kind != "ReferenceGrant" else []
        seen += status
        w.watch(resource, found[plural], *status, optional=True)
    controller.attach(Watched(entries=found, ingress_lb=ingress_lb.entries, service_lb=service_lb.entries,
                              seen=[index.entries for index in seen], held=[index.entries for index in held]))
    return w


def hand_over(controller: IngressController, objects: Iterable[Mapping[str, Any]]) -> None:
    """Give the controller fresh views of `objects`, as its informers' first listing would (for tests and
    benches that run the controller without an API server; an object without a uid gets one)."""
    feeds = {i.resource.plural: i for i in watches(Client(Credentials("https://192.0.2.1:6443")),
                                                    controller).informers}
    plurals = {"IngressClass": "ingressclasses", "Ingress": "ingresses", "Service": "services",
               "EndpointSlice": "endpointslices", "Secret": "secrets", "Namespace": "namespaces",
               **{kind: plural for _, plural, kind, _ in GATEWAY_KINDS}}
    for obj in objects:
        md = obj.get("metadata") or {}
        uid = md.get("uid") or f"{obj['kind']}/{md.get('namespace', '')}/{md.get('name')}"
        feeds[plurals[obj["kind"]]].handle("ADDED", {**obj, "metadata": {**md, "uid": uid}})


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
                                   options.periods, GatewayStatusWriter(client, metrics),
                                   GatewayServiceWriter(client, metrics))
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
    tasks.append(asyncio.create_task(watches(client, controller).run(), name="informers"))
    log.info("knet ingress (controller %s), API server %s", options.config.controller, credentials.server)
    try:
        await kopf.operator(registry=runtime_operator.registry(credentials), standalone=True, clusterwide=True)
    finally:
        await runtime_operator.cancel(tasks)
        await nginx.stop()
        await servers.stop()
        await client.close()
