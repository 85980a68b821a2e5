"""The Service proxy's sync loop: views -> model -> one `nft -f` transaction, then conntrack, health
checks, Events and metrics.

Thin on purpose: when to sync and how (`schedule`), which conntrack entries to delete (`conntrack`),
which problems to report (`events.to_report`) and what to program (`operators.proxy`) are pure
functions; this class only calls them in order and talks to the kernel and the API server.

What it guarantees:
- nothing is programmed before the watches listed every Service, EndpointSlice and our Node (a
  half-listed cluster would reject traffic to Services whose slices were not seen yet);
- a failed transaction changes nothing in the kernel (nft applies all or nothing), keeps the last
  applied model as the reference, and makes the next sync a full one;
- when the API server goes away the views stay as they were, and so do the rules;
- a restart replaces the table in one transaction: established connections keep their conntrack
  entries, so they survive.
"""

from __future__ import annotations

import datetime
import gc
import logging
import time
from collections.abc import Callable, Generator, Iterable
from typing import TypeVar

from operators.agent import conntrack, dataplane
from operators.agent.health_check_ports import HealthCheckPorts
from operators.agent.metrics import OBJECT_KINDS, Metrics
from operators.agent.store import ProxyStore, new_trigger
from operators.kube.services import Problem
from operators.proxy.model import Build, ProxiedPort, ProxyConfig, ProxyModel, build_model, stream_model
from operators.runtime import schedule
from operators.runtime.events import EventRecorder, post_new, to_report
from operators.runtime.loop import SyncLoop
from operators.runtime.schedule import Kind, Periods
from operators.runtime.servers import Status

log = logging.getLogger(__name__)
REASON = "ProxyProblem"
T, R = TypeVar("T"), TypeVar("R")


def drive(steps: Generator[T, None, R], each: Callable[[T], None]) -> R:
    """Run a generator to its end, handing each item it yields to `each`; what it returns."""
    while True:
        try:
            each(next(steps))
        except StopIteration as done:
            return done.value


class ProxyAgent(SyncLoop):
    side, pauses_gc = "proxy", True

    def __init__(self, node: str, config: ProxyConfig, periods: Periods, metrics: Metrics,
                 events: EventRecorder | None, config_problems: Iterable[Problem] = ()) -> None:
        super().__init__(periods, metrics.errors.labels("sync").inc)
        self.node = node
        self.config = config
        self.metrics = metrics
        self.events = events
        self.config_problems = tuple(config_problems)
        self.applied: ProxyModel | None = None
        self.built: Build | None = None  # of the rules in place: the next incremental build starts from it
        self.dataplane = dataplane.Dataplane()
        self.reported: frozenset[Problem] = frozenset()
        self.retry_reports = False  # an Event could not be posted: the next sync builds the model again
        self.store = ProxyStore()  # the watches feed it (`attach`)
        self.triggers: list[float] = []  # EndpointSlice change times not programmed yet (epoch seconds)
        self.seen_triggers: dict[str, float] = {}  # EndpointSlice uid -> its last trigger time
        self.started = time.time()
        self.last_success: datetime.datetime | None = None
        self.node_known = False
        self.health_ports = HealthCheckPorts(self.healthy)

    # --- fed by the watches ---------------------------------------------------------------------

    def attach(self, store: ProxyStore) -> None:
        """The views the watches keep current, with what changed since the last sync."""
        self.store = store

    def slice_changed(self, uid: str, trigger: float | None, deleted: bool = False) -> None:
        """An EndpointSlice changed; its trigger time starts a programming-latency measurement."""
        if deleted:
            self.seen_triggers.pop(uid, None)
        elif trigger is not None and new_trigger(self.seen_triggers, uid, trigger, self.started):
            self.seen_triggers[uid] = trigger
            self.triggers.append(trigger)
        self.changed()

    # --- reported -------------------------------------------------------------------------------

    def configure(self, config: ProxyConfig, periods: Periods, problems: tuple[Problem, ...]) -> None:
        """New settings (ClusterNetworkConfig): a sync with them is due if the watches listed everything."""
        self.config, self.periods, self.config_problems = config, periods, problems
        if self.listed.is_set():
            self.changed()

    def status(self) -> Status:
        return Status(self.healthy(), self.state.synced, self.last_success, self.node_known)

    # --- the loop (`SyncLoop.run` calls `sync`) ---------------------------------------------------

    async def sync(self, now: float) -> None:
        changed = self.state.dirty_since is not None or self.retry_reports
        self.state = schedule.started(self.state, now)
        present = await self.dataplane.present(self.config.mode)
        if not present and self.applied is not None and self.config.mode == self.dataplane.mode:
            log.warning("our %s rules were removed by someone else; restoring them", self.dataplane.mode)
            self.metrics.errors.labels("table-missing").inc()
        if schedule.kind_of_sync(self.state, now, self.periods, present, changed) is Kind.NONE:
            # a periodic check: nothing watched changed and the table is there; no need to build anything
            self.state = schedule.finished(self.state, now, Kind.NONE, ok=True)
            self.last_success = datetime.datetime.now(datetime.UTC)
            return
        triggers, self.triggers = self.triggers, []
        changes, views = self.store.take(), self.store.views()  # a full sync reads everything anyway
        # A full sync starts nft first and streams it each shard as soon as its Services are built.
        full = schedule.full_due(self.state, now, self.periods, present)
        stream = self.dataplane.stream(self.config.mode) if full else None
        before, self.built = (None if full else self.built), None  # none while no build is in place
        try:
            if stream is not None:
                build = drive(stream_model(views, self.node, self.config, stream.groups, stream.group_of),
                              stream.shard)
            else:
                build = build_model(views, self.node, self.config, before, changes)
        except BaseException:
            if stream:
                stream.abort()
            raise
        model, built = build.model, time.monotonic()
        kind = Kind.FULL if full else schedule.kind_of_sync(self.state, now, self.periods, present,
                                                            model != self.applied)
        if kind is not Kind.NONE:
            ok, err = await self.dataplane.apply(model, full=kind is Kind.FULL, stream=stream)
            if not ok:
                log.error("%s %s transaction failed, the previous rules stay: %s", model.config.mode, kind.value, err)
                self.metrics.errors.labels("nft" if model.config.mode == "nftables" else "iptables").inc()
                self.triggers = triggers + self.triggers
                self.state = schedule.finished(self.state, now, kind, ok=False)
                return
            done = time.monotonic()
            self.metrics.sync_duration.labels(kind.value).observe(done - now)
            log.info("%s sync: %d service ports in %.3f s (%s %.3f s, then %s %.3f s)", kind.value, len(model.ports),
                     done - now, "model and shard tables" if stream else "model", built - now,
                     "main table and transaction" if stream else "rules and transaction", done - built)
        previous, self.applied, self.built = self.applied, model, build
        if kind is Kind.FULL:
            # The views, model and table just built live until they change: out of the cyclic collector's
            # sight, its full passes over a large heap (~0.3 s at 10k Services) no longer stall the syncs.
            gc.freeze()
        self.state = schedule.finished(self.state, now, kind, ok=True)
        self.last_success = datetime.datetime.now(datetime.UTC)
        self.node_known = any(n.name == self.node for n in views.nodes)
        self.record(model, triggers)
        if previous is not None:
            await self.flush_conntrack(*_compared(previous, before, build))
        if await self.health_ports.update(model.health_checks):
            self.metrics.errors.labels("healthcheck").inc()
        await self.report([*self.config_problems, *self.store.problems(), *build.problems])

    def record(self, model: ProxyModel, triggers: list[float]) -> None:
        """The programming latency, then the counts (which the build kept up to date: no pass over all)."""
        m, wall = self.metrics, time.time()
        for t in triggers:
            m.programming_latency.observe(max(0.0, wall - t))
        m.last_sync.set(wall)
        m.services.set(model.service_count)
        m.service_ports.set(len(model.ports))
        m.endpoints.set(model.endpoint_count)

    async def flush_conntrack(self, old: Iterable[ProxiedPort], new: Iterable[ProxiedPort]) -> None:
        for flush in conntrack.stale_flows(old, new):
            ok, err = await dataplane.conntrack_delete(flush)
            if not ok:
                log.warning("%s failed: %s", " ".join(flush.argv()), err)
                self.metrics.errors.labels("conntrack").inc()

    async def report(self, problems: list[Problem]) -> None:
        """An Event (once) and a metric per problem; problems are logged either way."""
        new, self.reported = to_report(self.reported, problems)
        for kind in OBJECT_KINDS:
            objects = {(p.namespace, p.name) for p in problems if p.kind == kind}
            self.metrics.objects_with_problems.labels(kind).set(len(objects))
        unposted = await post_new(new, lambda p: self.store.ref(p.kind, p.namespace, p.name),
                                  self.events, REASON, self.metrics.errors.labels("event").inc)
        for problem in set(new) - set(unposted):  # an unposted one is retried at the next sync, counted once posted
            if problem.kind in OBJECT_KINDS:
                self.metrics.problems.labels(problem.kind).inc()
        self.reported -= frozenset(unposted)
        self.retry_reports = bool(unposted)

    async def stop(self) -> None:
        await self.health_ports.stop()


def _compared(applied: ProxyModel, before: Build | None, build: Build) -> tuple[Iterable[ProxiedPort], ...]:
    """The ports whose conntrack entries may have gone stale, before and after: those of the Services the
    build changed when it started from the build in place, else all of them."""
    if before is None or build.changed is None:
        return applied.ports, build.model.ports
    return before.ports_of(build.changed), build.ports_of(build.changed)
