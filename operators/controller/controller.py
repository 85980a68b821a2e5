"""The controller's sync loop: the informers' views in, status patches, Events and the CoreDNS ConfigMap out.

Every sync recomputes everything from the indices (pools.allocate, dnsconfig.plan) and writes only
what differs from what the API shows, so a resync is cheap and a restarted or newly active replica
converges to the same result. Syncs are debounced (`min` seconds collect a burst of changes) and run
at least every `max` seconds, which also puts back a Corefile someone edited by hand. Only the active
replica writes (leader.is_active, asked of the ClusterKopfPeering object before each sync), and only
once every informer has its initial listing (a half-listed cluster would hand a Service's address to
another).
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from operators.controller import dnsconfig, leader, pools, status
from operators.dns.corefile import ClusterSettings
from operators.kube.client import MERGE_PATCH, ApiError, Client, api_path
from operators.runtime.events import EventRecorder
from operators.runtime.loop import StepLoop
from operators.runtime.schedule import Periods
from operators.runtime.store import ObjectRef

log = logging.getLogger(__name__)
GROUP, VERSION = "knet.io", "v1alpha1"


@dataclass
class Views:
    """What the controller watches, as its informers keep it (operator.py): Services with their Event
    references, Namespaces' labels, and the pools and DNSConfigs in compact form."""

    services: Iterable[tuple[pools.LBService, ObjectRef]] = ()
    namespaces: Iterable[tuple[str, dict[str, str]]] = ()
    pools: Iterable[dict[str, Any]] = ()
    dnsconfigs: Iterable[dict[str, Any]] = ()


@dataclass(frozen=True)
class Peering:
    """Where this replica meets the others ("" name: standalone, always active)."""

    name: str
    identity: str
    priority: int


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.active = Gauge("knet_controller_active", "1 on the replica that acts, 0 on standbys", registry=r)
        self.syncs = Histogram("knet_controller_sync_duration_seconds", "Duration of a sync", registry=r)
        self.errors = Counter("knet_controller_sync_errors_total", "Failed syncs", registry=r)
        self.addresses = Gauge("knet_controller_pool_addresses", "Addresses of a pool", ["pool", "state"],
                               registry=r)
        self.unserved = Gauge("knet_controller_services_without_address",
                              "LoadBalancer Services of ours that miss an address of some family", registry=r)
        self.corefile_writes = Counter("knet_controller_corefile_writes_total",
                                       "Corefiles written to CoreDNS's ConfigMap", registry=r)


class Controller:
    def __init__(self, client: Client, events: EventRecorder, metrics: Metrics,
                 peering: Peering, coredns: tuple[str, str] | None, periods: Periods,
                 now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)) -> None:
        self.client = client
        self.events = events
        self.metrics = metrics
        self.peering = peering
        self.coredns = coredns
        self.now = now
        self.views = Views()
        self.loop = StepLoop("controller", periods, metrics.errors.inc, self.step)
        self.reported: frozenset[tuple[str, str, str]] = frozenset()
        self.synced = False
        self.active = not peering.name
        self.last_sync: float | None = None

    def attach(self, views: Views) -> None:
        self.views = views

    def changed(self) -> None:
        self.loop.changed()

    async def run(self) -> None:
        await self.loop.run()

    async def step(self) -> None:
        """Sync if this replica is the active one."""
        self.active = await self.is_active()
        self.metrics.active.set(int(self.active))
        if self.active:
            with self.metrics.syncs.time():
                await self.sync()
            self.synced = True
            self.last_sync = time.time()

    async def is_active(self) -> bool:
        if not self.peering.name:
            return True
        obj = await self.client.request("GET", api_path("kopf.dev/v1", "clusterkopfpeerings", name=self.peering.name))
        return leader.is_active(obj.get("status"), self.peering.identity, self.peering.priority, self.now())

    async def sync(self) -> None:
        await self.sync_pools()
        await self.sync_dns()

    # --- LoadBalancer addresses

    async def sync_pools(self) -> None:
        pool_objs = {o["metadata"]["name"]: o for o in self.views.pools}
        valid, problems = pools.valid_pools(pool_objs.values())
        services = {svc.key: (svc, ref) for svc, ref in self.views.services}
        namespaces = dict(self.views.namespaces)
        result = pools.allocate(valid, problems, [s for s, _ in services.values()], namespaces)
        for key, addresses in result.addresses.items():
            svc = services[key][0]
            if patch := status.service_status(svc.current, addresses):
                log.info("Service %s: load-balancer addresses %s", key, ", ".join(addresses) or "released")
                await self.write(f"Service {key}", api_path("v1", "services", svc.namespace, svc.name,
                                                                       subresource="status"),
                                 patch)
        for name, obj in pool_objs.items():
            usage = result.usage.get(name)
            for state, count in (("allocated", usage.allocated if usage else 0),
                                 ("available", usage.available if usage else 0)):
                self.metrics.addresses.labels(name, state).set(count)
            if patch := status.pool_status(obj, usage, problems.get(name), self.now()):
                await self.write(f"LoadBalancerIPPool {name}",
                                 api_path(f"{GROUP}/{VERSION}", "loadbalancerippools", name=name, subresource="status"),
                                 patch)
        for gone in set(self._labelled_pools()) - set(pool_objs):
            for state in ("allocated", "available"):
                self.metrics.addresses.remove(gone, state)
        self.metrics.unserved.set(len(result.unserved))
        found = [(services[key][1], "AllocationFailed", why) for key, whys in result.unserved.items() for why in whys]
        found += [(_pool_ref(pool_objs[name]), problem.reason, problem.message) for name, problem in problems.items()]
        await self.report(found)

    async def write(self, what: str, path: str, patch: Mapping[str, Any]) -> None:
        """One status merge patch; a refusal (the object is gone, a conflict, no permission) is logged and
        counted, and the other objects are still written (the next sync tries again)."""
        try:
            await self.client.request("PATCH", path, patch, MERGE_PATCH)
        except ApiError as e:
            log.warning("could not write the status of %s: %s", what, e)
            self.metrics.errors.inc()

    def _labelled_pools(self) -> set[str]:
        return {s.labels["pool"] for m in self.metrics.addresses.collect() for s in m.samples}

    async def report(self, found: list[tuple[ObjectRef, str, str]]) -> None:
        """One Warning Event per new problem (one that went away and came back is new again)."""
        current = {(f"{ref.kind}/{ref.namespace}/{ref.name}", reason, message): ref
                   for ref, reason, message in found}
        posted = set()
        for key, ref in current.items():
            if key in self.reported or await self.events.post(ref, key[1], key[2]):
                posted.add(key)
        self.reported = frozenset(posted)

    # --- CoreDNS's Corefile

    async def sync_dns(self) -> None:
        configs = {o["metadata"]["name"]: o for o in self.views.dnsconfigs}
        result = dnsconfig.plan(configs, ClusterSettings())
        verdicts = dict(result.verdicts)
        if dnsconfig.USED in verdicts and verdicts[dnsconfig.USED].ok:
            verdicts[dnsconfig.USED] = await self.write_corefile(result.corefile)
        for name, verdict in verdicts.items():
            patch = status.dnsconfig_status(configs[name], verdict.ok, verdict.reason, verdict.message,
                                            verdict.problems, self.now())
            if patch:
                await self.write(f"DNSConfig {name}",
                                 api_path(f"{GROUP}/{VERSION}", "dnsconfigs", name=name, subresource="status"), patch)

    async def write_corefile(self, corefile: str | None) -> dnsconfig.Verdict:
        if self.coredns is None or corefile is None:
            return dnsconfig.Verdict(True, "Valid", "valid; CoreDNS's ConfigMap is not managed")
        ns, name = self.coredns
        where = f"ConfigMap {ns}/{name}"
        path = api_path("v1", "configmaps", ns, name)
        try:
            cm = await self.client.request("GET", path)
        except ApiError as e:
            if e.status != 404:
                raise
            return dnsconfig.Verdict(False, "ConfigMapMissing", f"{where} does not exist (CoreDNS is not installed?)")
        if (cm.get("data") or {}).get("Corefile") != corefile:
            log.info("writing the Corefile to %s", where)
            await self.client.request("PATCH", path, {"data": {"Corefile": corefile}}, MERGE_PATCH)
            self.metrics.corefile_writes.inc()
        return dnsconfig.Verdict(True, "Applied", f"the Corefile is in {where}")


def _pool_ref(obj: Mapping[str, Any]) -> ObjectRef:
    md = obj.get("metadata") or {}
    return ObjectRef(f"{GROUP}/{VERSION}", "LoadBalancerIPPool", "", str(md.get("name", "")), str(md.get("uid", "")))
