"""The controller's sync loop: views -> model -> nginx.conf, applied with as few reloads as possible.

A sync builds the model from the watched views and renders it. A changed config is written to a test
file and checked with `nginx -t`; only a config that passes replaces `nginx.conf` (atomically) and is
loaded with a graceful reload (HUP). When nginx refuses a config, the Ingresses that changed since the
last good config are added back in halves until each refused one stands alone (`culprits.py`); the
config without those is applied, and each culprit gets a ConfigRejected Event that carries only what
concerns it. A culprit is left out until it (or a TLS Secret it names) changes, so one Ingress never
stops the others' changes. Unchanged config with changed endpoints is a POST to nginx's control
socket: no reload. The endpoints are pushed again after every start and reload.

`nginx.conf` is only ever replaced by a config that passed `nginx -t`, so the one on disk is the last
good config: a restarted controller serves it (with the endpoints it last pushed) until its first sync.

The same sync serves the Gateway API: GatewayClasses, Gateways and HTTPRoutes go into the model beside the
Ingresses (`operators.gateway.model`), and their status is written only for a config nginx runs, so
`Programmed` is never claimed for one it refused (`operators.gateway.status` decides, `gateway_status.py`
writes). With `Runtime.gateway_ports`, each Gateway gets its own LoadBalancer Service, written after the config
that listens on its ports runs (`operators.gateway.services` decides, `gateway_services.py` writes). Culprit
bisection covers Ingresses only: Gateway API input is validated by the model, rule by rule.

Changes are debounced: a sync runs `min_period` after the first change it picks up (so a burst of
watch events gives one reload), and at least every `max_period` (a resync that also retries failures).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from operators.gateway.model import GatewayObjects, Status
from operators.gateway.model import build_model as build_gateway_model
from operators.gateway.services import Change, Held, changes, gateway_addresses, ingress_endpoints, wanted
from operators.gateway.status import Seen, status_patches
from operators.ingress import files
from operators.ingress.culprits import isolate, redact
from operators.ingress.gateway_services import GatewayServiceWriter
from operators.ingress.gateway_status import GatewayStatusWriter
from operators.ingress.metrics import Metrics
from operators.ingress.model import IngressConfig, IngressModel
from operators.ingress.nginx import Nginx, NginxError
from operators.ingress.render import Runtime, render_config, render_endpoints
from operators.ingress.status import StatusWriter
from operators.kube.ingresses import Ingress, TLSSecret
from operators.kube.parse import Problem
from operators.runtime.cli import COMPONENT_PERIODS
from operators.runtime.events import EventRecorder, problem_ref
from operators.runtime.loop import StepLoop
from operators.runtime.schedule import Periods
from operators.runtime.store import Entry, ObjectRef

log = logging.getLogger(__name__)
KINDS = ("classes", "ingresses", "services", "slices", "secrets", "gatewayclasses", "gateways", "httproutes",
         "referencegrants", "namespaces")


@dataclass
class Watched:
    """What the controller watches, as its informers keep it (operator.py): the parsed entries of each of
    `KINDS`; each Ingress's load-balancer addresses with the object as last seen (to write its status),
    by (namespace, name); each Service's load-balancer addresses, by (namespace, name); each Gateway API
    object's status as last seen, by (kind, key); knet's Services and EndpointSlices of Gateways (None for
    everyone else's objects)."""

    entries: Mapping[str, Iterable[Entry[Any]]] = field(default_factory=dict)
    ingress_lb: Mapping[tuple[str, str], tuple[tuple[str, ...], dict[str, Any]]] = field(default_factory=dict)
    service_lb: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    seen: Iterable[Mapping[tuple[str, str], Seen]] = ()
    held: Iterable[Mapping[Any, Held | None]] = ()  # Gateways' own Services and EndpointSlices, as watched


def split(found: Iterable[Entry[Any]]) -> tuple[list[Any], list[Problem], dict[tuple[str, str, str], ObjectRef]]:
    """The usable views, the parse problems and the Event references of some entries."""
    views, problems, refs = [], [], {}
    for e in found:
        if e.view is not None:
            views.append(e.view)
        problems.extend(e.problems)
        refs[(e.ref.kind, e.ref.namespace, e.ref.name)] = e.ref
    return views, problems, refs


def seen(watched: Watched) -> dict[tuple[str, str], Seen]:
    """(kind, key) -> the Gateway API object as last watched."""
    return {key: value for index in watched.seen for key, value in index.items()}


def gateway_objects(views: Mapping[str, list[Any]]) -> GatewayObjects:
    return GatewayObjects(tuple(views["gatewayclasses"]), tuple(views["gateways"]), tuple(views["httproutes"]),
                          tuple(views["referencegrants"]), tuple(views["namespaces"]))


def config_hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:13], 16)


@dataclass
class Applied:
    """What nginx runs: the config text, the endpoints last pushed, the Ingress views it was built from."""

    text: str = ""
    endpoints: str | None = None
    ingresses: dict[str, Any] = field(default_factory=dict)
    reported: frozenset[Problem] = frozenset()
    rejected: str = ""  # the text nginx -t refused last (not retried until it changes)
    quarantined: dict[str, Any] = field(default_factory=dict)  # culprit -> its fingerprint when refused


def fingerprint(ing: Ingress, secrets: Mapping[str, TLSSecret]) -> tuple[Any, ...]:
    """What a refused Ingress must change before it is tried again: itself, or a TLS Secret it names."""
    return ing, tuple(secrets.get(f"{ing.namespace}/{t.secret_name}") for t in ing.tls)


def own_certificates(model: IngressModel, ing: Ingress) -> list[str]:
    """The certificate files made from the Ingress's own Secrets (named `namespace_secret_digest.pem`)."""
    return [name for name, _ in model.certificates
            if any(name.startswith(f"{ing.namespace}_{t.secret_name}_") for t in ing.tls)]


class IngressController:
    def __init__(self, config: IngressConfig, runtime: Runtime, nginx: Nginx, metrics: Metrics,
                 events: EventRecorder, status: StatusWriter, periods: Periods | None = None,
                 gateway_status: GatewayStatusWriter | None = None,
                 gateway_services: GatewayServiceWriter | None = None) -> None:
        self.config = config
        self.rt = runtime
        self.nginx = nginx
        self.metrics = metrics
        self.events = events
        self.status = status
        self.gateway_status = gateway_status or GatewayStatusWriter(None, metrics)
        self.gateway_services = gateway_services or GatewayServiceWriter(None, metrics)
        self.watched = Watched()
        self.loop = StepLoop("ingress", periods or COMPONENT_PERIODS, metrics.errors.labels("sync").inc, self.sync)
        self.applied = Applied()
        self.synced = False
        self.last_sync: float | None = None
        self.lock = asyncio.Lock()

    def attach(self, watched: Watched) -> None:
        self.watched = watched

    def changed(self) -> None:
        self.loop.changed()

    async def ready(self) -> bool:
        return self.synced and await self.nginx.healthy()

    async def run(self) -> None:
        await self.loop.run()

    def snapshot(self) -> tuple[dict[str, list[Any]], list[Problem], dict[tuple[str, str, str], ObjectRef]]:
        """The watched views by kind, their parse problems and their Event references."""
        views: dict[str, list[Any]] = {}
        problems: list[Problem] = []
        refs: dict[tuple[str, str, str], ObjectRef] = {}
        for kind in KINDS:
            views[kind], found, more = split(self.watched.entries.get(kind, ()))
            problems += found
            refs.update(more)
        return views, problems, refs

    def build(self, views: Mapping[str, list[Any]], only: frozenset[str] | None = None,
              ) -> tuple[IngressModel, list[Problem], Status]:
        """The model of the views (every Gateway and HTTPRoute; of the Ingresses in `only` alone when given),
        its problems and the Gateway API status it implies."""
        ingresses = [i for i in views["ingresses"] if only is None or i.key in only]
        return build_gateway_model(gateway_objects(views), views["classes"], ingresses, views["services"],
                                   views["slices"], views["secrets"], self.config,
                                   (self.rt.http_port, self.rt.https_port), self.rt.taken_ports(),
                                   self.rt.gateway_ports)

    def held(self, views: Mapping[str, list[Any]]) -> frozenset[str]:
        """The quarantined Ingresses that have not changed since nginx refused them (the rest are forgotten)."""
        secrets = {s.key: s for s in views["secrets"]}
        now = {i.key: fingerprint(i, secrets) for i in views["ingresses"]}
        self.applied.quarantined = {k: f for k, f in self.applied.quarantined.items() if now.get(k) == f}
        return frozenset(self.applied.quarantined)

    async def sync(self) -> None:
        async with self.lock:
            t0 = time.perf_counter()
            views, problems, refs = self.snapshot()
            held = self.held(views)
            model, found, status = self.build(views, frozenset(i.key for i in views["ingresses"]) - held)
            text = render_config(model, self.rt)
            self.metrics.render_duration.observe(time.perf_counter() - t0)
            self.metrics.ingresses.set(len(model.ingresses))
            if text != self.applied.text and text != self.applied.rejected:
                await self.apply_config(views, model, text, refs)
            elif self.applied.text and render_endpoints(model) != self.applied.endpoints:
                await self.push(model)
            self.synced = self.synced or bool(self.applied.text)
            self.last_sync = time.time()
            await self.report(problems + found, refs)
            w = self.watched
            await self.status.update(model.ingresses, w.ingress_lb, w.service_lb)
            if text == self.applied.text:  # Programmed means nginx runs it: no status for a config it refused
                await self.gateway_services.write(self.service_changes(views, status))
                own = gateway_addresses(status, w.service_lb) if self.rt.gateway_ports is not None else None
                await self.gateway_status.write(status_patches(status, seen(w), self.status.addresses(w.service_lb),
                                                               datetime.datetime.now(datetime.UTC), own))

    def service_changes(self, views: Mapping[str, list[Any]], status: Status) -> list[Change]:
        """The writes that give each Gateway its own Service, leading to the ingress Service's endpoints;
        nothing where Gateways share the ingress address."""
        if self.rt.gateway_ports is None:
            return []
        ns, _, name = self.status.service.partition("/")
        want = wanted(status, ingress_endpoints(views["slices"], (ns, name)))
        return changes(want, (h for index in self.watched.held for h in index.values() if h is not None))

    def check(self, model: IngressModel, text: str | None = None) -> str | None:
        """`nginx -t`'s verdict on the model's config (None: accepted), with the certificates it names written."""
        files.write_certificates(model, self.rt)
        return files.check_config(text or render_config(model, self.rt), self.rt, self.nginx.binary)

    def without_culprits(self, views: Mapping[str, list[Any]], model: IngressModel, refused: str,
                         ) -> tuple[IngressModel, str, dict[str, str]] | None:
        """The model and config of the Ingresses nginx accepts, and the culprits with nginx's message."""
        ours = {i.key: i for i in views["ingresses"] if i.key in set(model.ingresses)}
        changed = sorted(k for k, v in ours.items() if self.applied.ingresses.get(k) != v)
        unchanged = sorted(set(ours) - set(changed))
        found = isolate(changed, unchanged, lambda keys: self.check(self.build(views, keys)[0]), refused)
        if found is None:
            return None
        served, culprits = found
        kept, *_ = self.build(views, served)
        return kept, render_config(kept, self.rt), culprits

    async def apply_config(self, views: Mapping[str, list[Any]], model: IngressModel, text: str,
                           refs: Mapping[tuple[str, str, str], ObjectRef]) -> None:
        error = await asyncio.to_thread(self.check, model, text)
        if error:
            self.metrics.reloads.labels("failure").inc()
            self.metrics.last_reload_ok.set(0)
            log.error("nginx -t refused the new config: %s", error)
            found = await asyncio.to_thread(self.without_culprits, views, model, error)
            if found is None:
                log.error("nginx -t refuses even a config without Ingresses; the running config stays")
                self.applied.rejected = text
                return
            full, (model, text, culprits) = model, found
            await self.quarantine(views, full, culprits, refs)
            if text == self.applied.text:
                return
        tmp = self.nginx.conf.with_name(".nginx.conf.new")
        tmp.write_text(text)
        os.replace(tmp, self.nginx.conf)
        if self.nginx.running:
            self.nginx.reload()
            self.metrics.reloads.labels("success").inc()
            log.info("nginx reloaded (config %012x)", config_hash(text))
        else:
            await self.nginx.start()
            self.metrics.nginx_starts.inc()
        files.prune_certificates(model, self.rt)
        ours = {i.key: i for i in views["ingresses"] if i.key in set(model.ingresses)}
        self.applied.text, self.applied.rejected, self.applied.ingresses = text, "", ours
        self.metrics.last_reload_ok.set(1)
        self.metrics.last_reload.set(time.time())
        self.metrics.config_hash.set(config_hash(text))
        self.applied.endpoints = None
        await self.push(model)

    async def quarantine(self, views: Mapping[str, list[Any]], model: IngressModel, culprits: Mapping[str, str],
                         refs: Mapping[tuple[str, str, str], ObjectRef]) -> None:
        """Leave each culprit out until it changes, and tell it (and it alone) why."""
        secrets = {s.key: s for s in views["secrets"]}
        ingresses = {i.key: i for i in views["ingresses"]}
        for key, error in sorted(culprits.items()):
            ing = ingresses[key]
            self.applied.quarantined[key] = fingerprint(ing, secrets)
            why = redact(error, self.rt.certificate_dir, own_certificates(model, ing))
            log.error("Ingress %s left out: nginx refused the config with it: %s", key, why)
            ref = refs.get(("Ingress", ing.namespace, ing.name)) or ObjectRef(
                "networking.k8s.io/v1", "Ingress", ing.namespace, ing.name, "")
            if not await self.events.post(ref, "ConfigRejected", "nginx refused the configuration with this "
                                                                 f"Ingress; it is not served until it changes: {why}"):
                self.metrics.errors.labels("event").inc()

    async def push(self, model: IngressModel) -> None:
        body = render_endpoints(model)
        try:
            answer = await self.nginx.push_endpoints(body)
        except NginxError as e:
            log.error("%s", e)
            self.metrics.errors.labels("endpoints").inc()
            return
        self.applied.endpoints = body
        files.save_endpoints(body, self.rt)
        self.metrics.endpoint_updates.inc()
        log.info("endpoints pushed without reload: %s", answer)

    async def resume(self) -> None:
        """Serve the config an earlier run left (the last that passed `nginx -t`) and the endpoints it last
        pushed, until the first sync replaces them; nothing when there is none or nginx now refuses it."""
        if not self.nginx.conf.exists() or self.nginx.running:
            return
        text = self.nginx.conf.read_text()
        error = await asyncio.to_thread(files.check_config, text, self.rt, self.nginx.binary)
        if error:
            log.error("the config left by an earlier run fails nginx -t; waiting for the first sync: %s", error)
            return
        try:
            await self.nginx.start()
        except NginxError as e:
            log.error("cannot start nginx with the last good config: %s", e)
            return
        self.metrics.nginx_starts.inc()
        self.applied.text = text
        saved = files.saved_endpoints(self.rt)
        if saved is not None and self.rt.dynamic_endpoints:
            try:
                await self.nginx.push_endpoints(saved)
                self.applied.endpoints = saved
            except NginxError as e:
                log.error("%s", e)
        log.info("serving the last good config (%012x) until the first sync", config_hash(text))

    async def restarted(self) -> None:
        """nginx came back after a crash: it has the config on disk, but no endpoints."""
        self.metrics.nginx_starts.inc()
        self.applied.endpoints = None
        self.changed()

    async def report(self, problems: list[Problem], refs: Mapping[tuple[str, str, str], ObjectRef]) -> None:
        current = dict.fromkeys(problems)
        posted = set(self.applied.reported)
        for problem in current:
            if problem in posted:
                continue
            self.metrics.problems.inc()
            log.warning("%s", problem)
            if await self.events.post(problem_ref(problem, refs), "IngressProblem", problem.message):
                posted.add(problem)
            else:
                self.metrics.errors.labels("event").inc()
        self.applied.reported = frozenset(p for p in posted if p in current)


def prepare_prefix(runtime: Runtime) -> None:
    """nginx's directories and default certificate. A config left by an earlier run stays: only a config that
    passed `nginx -t` ever becomes nginx.conf, and `resume` checks it again before serving it."""
    files.prepare(runtime)
