"""What the agent reports about its node after its syncs: the node's `NodeNetworkStatus` (knet.io/v1alpha1,
cluster scope, named after the Node, owned by it) and the LoadBalancer addresses it answers for.

Both follow the sync loop from outside it: a small loop looks at the last applied model once a second and
acts only when something changed, so the sync path stays as it is and a slow API server never holds up
programming. The status body is a pure function of what the agent knows; it is written with a merge
patch of the status subresource when it differs from the last one written (times aside), and at least
every `REFRESH` seconds so that `lastSyncTime` stays fresh.

Conditions:
  Ready           the rules were fully programmed once and no change or failure waits too long (/healthz)
  RulesApplied    the last transaction succeeded (False: TransactionFailed, with the error)
  ObjectProblems  some watched objects were skipped or partly programmed (their Events say why)
Counts: services (Service ports per family, as the Services column), endpoints (reachable endpoints per
port), rules (chain rules plus map and set elements in nftables; `-A` lines in iptables mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from operators.agent import announce, config, store
from operators.agent.proxy import ProxyAgent
from operators.kube.client import MERGE_PATCH, ApiError, Client, api_path
from operators.kube.conditions import stamp, with_transitions
from operators.kube.services import Problem
from operators.proxy.model import ProxyModel

GROUP, VERSION, PLURAL, KIND = "knet.io", "v1alpha1", "nodenetworkstatuses", "NodeNetworkStatus"
REFRESH = 30.0
RETRY = 10.0  # seconds before a failed write is tried again (without the CRD every step would fail)
MAX_ERRORS = 20
log = logging.getLogger(__name__)


def go_duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


@dataclass(frozen=True)
class Report:
    """Everything the status says, gathered from the agent at one moment."""

    mode: str
    generation: int
    synced: bool  # fully programmed once
    healthy: bool
    failing: bool  # the last transaction failed
    services: int
    endpoints: int
    rules: int
    last_sync: datetime.datetime | None
    last_full: datetime.datetime | None
    duration: float
    failures: int
    errors: tuple[tuple[datetime.datetime, str], ...]  # transaction errors, newest first
    problems: tuple[Problem, ...]


def _condition(ctype: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {"type": ctype, "status": "True" if ok else "False", "reason": reason, "message": message,
            "observedGeneration": generation}


def conditions(r: Report) -> list[dict[str, Any]]:
    """The conditions without their lastTransitionTime (see `with_transitions`)."""
    ready = r.synced and r.healthy
    last_error = r.errors[0][1] if r.errors else ""
    return [
        _condition("Ready", ready, "Synced" if ready else "NotSynced" if not r.synced else "Unhealthy",
                   f"{r.mode} rules programmed" if ready else "rules not (or not recently) programmed",
                   r.generation),
        _condition("RulesApplied", not r.failing, "TransactionFailed" if r.failing else "Applied",
                   last_error if r.failing else "the last transaction succeeded", r.generation),
        _condition("ObjectProblems", bool(r.problems), "ObjectsSkipped" if r.problems else "None",
                   f"{len({(p.kind, p.namespace, p.name) for p in r.problems})} objects have problems; see their "
                   "Events" if r.problems else "every watched object was programmed as written", r.generation),
    ]


def status_body(r: Report, old_conditions: Iterable[Mapping[str, Any]], now: datetime.datetime) -> dict[str, Any]:
    """The whole `status` of the node's NodeNetworkStatus."""
    errors = [{"time": stamp(t), "reason": "TransactionFailed", "message": m[:4096]} for t, m in r.errors]
    errors += [{"time": stamp(now), "reason": "ObjectProblem", "object": f"{p.kind} {p.namespace}/{p.name}"[:512],
                "message": p.message[:4096]} for p in r.problems]
    body: dict[str, Any] = {
        "observedGeneration": r.generation,
        "proxyMode": r.mode,
        "counts": {"services": r.services, "endpoints": r.endpoints, "rules": r.rules},
        "lastSyncDuration": go_duration(r.duration),
        "syncErrors": r.failures,
        "errors": errors[:MAX_ERRORS],
        "conditions": with_transitions(conditions(r), old_conditions, now),
    }
    if r.last_sync:
        body["lastSyncTime"] = stamp(r.last_sync)
        if r.last_full:
            body["lastFullSyncTime"] = stamp(min(r.last_full, r.last_sync))
    return body


def report_of(agent: ProxyAgent, generation: int) -> Report:
    plane, model = agent.dataplane, agent.applied
    last_full = None
    if agent.state.last_full is not None:
        last_full = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
            seconds=time.monotonic() - agent.state.last_full)
    return Report(
        mode=plane.mode, generation=generation, synced=agent.state.synced, healthy=agent.healthy(),
        failing=agent.state.failures > 0,
        services=len(model.ports) if model else 0,
        endpoints=model.endpoint_count if model else 0,
        rules=plane.rules, last_sync=agent.last_success, last_full=last_full, duration=plane.last_duration,
        failures=plane.failures, errors=tuple(plane.errors), problems=tuple(sorted(agent.reported, key=str)),
    )


def _without_times(body: Mapping[str, Any]) -> dict[str, Any]:
    skip = ("lastSyncTime", "lastFullSyncTime", "lastSyncDuration")
    return {k: v for k, v in body.items() if k not in skip and k != "errors"} | {
        "errors": [{k: v for k, v in e.items() if k != "time"} for e in body.get("errors", [])]}


class StatusWriter:
    """Creates the node's NodeNetworkStatus (owned by the Node) and patches its status."""

    def __init__(self, client: Client, node: str) -> None:
        self.client = client
        self.node = node
        self.written: dict[str, Any] | None = None
        self.written_at = 0.0
        self.failed_at: float | None = None
        self.created = False

    async def _write(self, body: dict[str, Any], node_uid: str) -> None:
        api = f"{GROUP}/{VERSION}"
        if not self.created:
            obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "spec": {},
                   "metadata": {"name": self.node, "ownerReferences": [
                       {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": node_uid}] if node_uid else []}}
            try:
                await self.client.request("POST", api_path(api, PLURAL), obj)
            except ApiError as e:
                if e.status != 409:
                    raise
            self.created = True
        try:
            await self.client.request("PATCH", api_path(api, PLURAL, name=self.node, subresource="status"),
                                      {"status": body}, MERGE_PATCH)
        except ApiError as e:
            if e.status == 404:
                self.created = False  # deleted by someone: created again next time
            raise

    async def write(self, report: Report, node_uid: str) -> None:
        old = (self.written or {}).get("conditions", [])
        body = status_body(report, old, datetime.datetime.now(datetime.UTC))
        now = time.monotonic()
        if self.failed_at is not None and now - self.failed_at < RETRY:
            return
        if self.written is not None and now - self.written_at < REFRESH and (
                _without_times(body) == _without_times(self.written)):
            return
        try:
            await self._write(body, node_uid)
        except (ApiError, aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:  # tried again after RETRY
            why = str(e) or type(e).__name__
            log.warning("could not write NodeNetworkStatus %s (trying again in %.0f s): %s", self.node, RETRY, why)
            self.failed_at = now
            return
        self.written, self.written_at, self.failed_at = body, time.monotonic(), None


class NodeReporter:
    """After each sync: the LoadBalancer addresses this node answers for, and its NodeNetworkStatus."""

    def __init__(self, agent: ProxyAgent, settings: config.Settings, writer: StatusWriter | None,
                 announcer: announce.Announcer | None) -> None:
        self.agent = agent
        self.settings = settings
        self.writer = writer
        self.announcer = announcer
        self.peers: Iterable[announce.Peer] = ()  # every Node's readiness and labels (the agent's Node informer)
        self.wake = asyncio.Event()
        self.announced_for: tuple[ProxyModel | None, tuple[announce.Peer, ...]] = (None, ())

    def attach(self, peers: Iterable[announce.Peer]) -> None:
        self.peers = peers

    async def step(self) -> None:
        agent, model = self.agent, self.agent.applied
        if model is not None and self.announcer is not None:
            peers = tuple(sorted(self.peers, key=lambda p: p.name))
            if self.announced_for[0] is not model or self.announced_for[1] != peers:
                slices = store.views(agent.store.slices)
                errors = await self.announcer.update(model.node_ips, announce.announced(model, peers, slices))
                if not errors:
                    self.announced_for = (model, peers)
        if self.writer is not None:
            await self.writer.write(report_of(agent, self.settings.current.generation), self._node_uid())

    def _node_uid(self) -> str:
        """Our Node's uid (for the ownerReference), from the agent's own-node index."""
        return next((e.ref.uid for e in self.agent.store.nodes if e.ref.name == self.agent.node), "")

    async def run(self) -> None:
        await self.agent.listed.wait()
        while True:
            try:
                await self.step()
            except Exception:
                log.exception("reporting failed")
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 1.0)
