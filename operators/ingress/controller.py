"""The controller's sync loop: views -> model -> nginx.conf, applied with as few reloads as possible.

A sync builds the model from the watched views and renders it. A changed config is written to a test
file and checked with `nginx -t`; only a config that passes replaces `nginx.conf` (atomically) and is
loaded with a graceful reload (HUP). A refused config leaves the running one in place, counts as a
failed reload and becomes a Warning Event on the Ingresses that changed since the last good config.
Unchanged config with changed endpoints is a POST to nginx's control socket: no reload. The endpoints
are pushed again after every start and reload.

Changes are debounced: a sync runs `min_period` after the first change it picks up (so a burst of
watch events gives one reload), and at least every `max_period` (a resync that also retries failures).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from operators.agent.store import Entry, ObjectRef
from operators.ingress import files
from operators.ingress.events import EventRecorder, ref_of
from operators.ingress.metrics import Metrics
from operators.ingress.model import IngressConfig, IngressModel, build_model
from operators.ingress.nginx import Nginx, NginxError
from operators.ingress.render import Runtime, render_config, render_endpoints
from operators.ingress.status import StatusWriter
from operators.kube.component import Periods, sync_loop
from operators.kube.parse import Problem

log = logging.getLogger(__name__)
KINDS = ("classes", "ingresses", "services", "slices", "secrets")


def entries(index: Any) -> list[Entry[Any]]:
    """Every Entry held by a Kopf index (keys map to stores of values)."""
    return [e for key in list(index or {}) for e in index.get(key, ())] if index is not None else []


def split(found: Iterable[Entry[Any]]) -> tuple[list[Any], list[Problem], dict[tuple[str, str, str], ObjectRef]]:
    """The usable views, the parse problems and the Event references of some entries."""
    views, problems, refs = [], [], {}
    for e in found:
        if e.view is not None:
            views.append(e.view)
        problems.extend(e.problems)
        refs[(e.ref.kind, e.ref.namespace, e.ref.name)] = e.ref
    return views, problems, refs


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


class IngressController:
    def __init__(self, config: IngressConfig, runtime: Runtime, nginx: Nginx, metrics: Metrics,
                 events: EventRecorder, status: StatusWriter, periods: Periods | None = None) -> None:
        self.config = config
        self.rt = runtime
        self.nginx = nginx
        self.metrics = metrics
        self.events = events
        self.status = status
        self.periods = periods or Periods()
        self.indexes: dict[str, Any] = {}
        self.dirty = asyncio.Event()
        self.applied = Applied()
        self.synced = False
        self.last_sync: float | None = None
        self.lock = asyncio.Lock()

    def attach(self, **indexes: Any) -> None:
        self.indexes = indexes

    def changed(self) -> None:
        self.dirty.set()

    async def ready(self) -> bool:
        return self.synced and await self.nginx.healthy()

    async def run(self) -> None:
        await sync_loop(self.dirty, self.periods, self.sync, "ingress", self.metrics.errors.labels("sync").inc)

    def snapshot(self) -> tuple[IngressModel, list[Problem], dict[tuple[str, str, str], ObjectRef], dict[str, Any]]:
        views: dict[str, list[Any]] = {}
        problems: list[Problem] = []
        refs: dict[tuple[str, str, str], ObjectRef] = {}
        for kind in KINDS:
            views[kind], found, more = split(entries(self.indexes.get(kind)))
            problems += found
            refs.update(more)
        model, found = build_model(views["classes"], views["ingresses"], views["services"], views["slices"],
                                   views["secrets"], self.config)
        ours = {i.key: i for i in views["ingresses"] if i.key in set(model.ingresses)}
        return model, problems + found, refs, ours

    async def sync(self) -> None:
        async with self.lock:
            t0 = time.perf_counter()
            model, problems, refs, ours = self.snapshot()
            text = render_config(model, self.rt)
            self.metrics.render_duration.observe(time.perf_counter() - t0)
            self.metrics.ingresses.set(len(model.ingresses))
            if text != self.applied.text and text != self.applied.rejected:
                await self.apply_config(model, text, ours, refs)
            elif self.applied.text and render_endpoints(model) != self.applied.endpoints:
                await self.push(model)
            self.synced = self.synced or bool(self.applied.text)
            self.last_sync = time.time()
            await self.report(problems, refs)
            await self.status.update(model.ingresses, self.indexes)

    async def apply_config(self, model: IngressModel, text: str, ours: Mapping[str, Any],
                           refs: Mapping[tuple[str, str, str], ObjectRef]) -> None:
        files.write_certificates(model, self.rt)
        error = await asyncio.to_thread(files.check_config, text, self.rt, self.nginx.binary)
        if error:
            self.applied.rejected = text
            if self.applied.text:
                self.metrics.reloads.labels("failure").inc()
            self.metrics.last_reload_ok.set(0)
            culprits = [k for k, v in ours.items() if self.applied.ingresses.get(k) != v] or list(ours)
            log.error("nginx -t refused the new config (the running one stays): %s", error)
            for key in culprits:
                ns, name = key.split("/", 1)
                ref = refs.get(("Ingress", ns, name)) or ObjectRef("networking.k8s.io/v1", "Ingress", ns, name, "")
                if not await self.events.post(ref, "ConfigRejected", f"nginx refused the configuration: {error}"):
                    self.metrics.errors.labels("event").inc()
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
        self.applied.text, self.applied.rejected, self.applied.ingresses = text, "", dict(ours)
        self.metrics.last_reload_ok.set(1)
        self.metrics.last_reload.set(time.time())
        self.metrics.config_hash.set(config_hash(text))
        self.applied.endpoints = None
        await self.push(model)

    async def push(self, model: IngressModel) -> None:
        body = render_endpoints(model)
        try:
            answer = await self.nginx.push_endpoints(body)
        except NginxError as e:
            log.error("%s", e)
            self.metrics.errors.labels("endpoints").inc()
            return
        self.applied.endpoints = body
        self.metrics.endpoint_updates.inc()
        log.info("endpoints pushed without reload: %s", answer)

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
            if await self.events.post(ref_of(problem, dict(refs)), "IngressProblem", problem.message):
                posted.add(problem)
            else:
                self.metrics.errors.labels("event").inc()
        self.applied.reported = frozenset(p for p in posted if p in current)


def prepare_prefix(runtime: Runtime) -> None:
    """nginx's directories and default certificate; a config left by an earlier run is not trusted."""
    files.prepare(runtime)
    Path(runtime.prefix, "nginx.conf").unlink(missing_ok=True)
