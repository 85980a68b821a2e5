"""The controller's sync loop: Kopf's indices in, status patches, Events and the CoreDNS ConfigMap out.

Every sync recomputes everything from the indices (pools.allocate, dnsconfig.plan) and writes only
what differs from what the API shows, so a resync is cheap and a restarted or newly active replica
converges to the same result. Syncs are debounced (`min` seconds collect a burst of changes) and run
at least every `max` seconds, which also puts back a Corefile someone edited by hand. Only the active
replica writes (leader.is_active, asked of the ClusterKopfPeering object before each sync), and only
after Kopf delivered a first event, which it does once every index has its initial listing.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from operators.controller import dnsconfig, leader, pools, status
from operators.dns.corefile import ClusterSettings
from operators.runtime.events import EventRecorder
from operators.runtime.loop import StepLoop
from operators.runtime.schedule import Periods
from operators.runtime.store import ObjectRef

log = logging.getLogger(__name__)
GROUP, VERSION = "knet.io", "v1alpha1"


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


def values(index: Any) -> list[Any]:
    """Every value a Kopf index holds (one per object: the keys are unique)."""
    return [v for key in list(index or {}) for v in index.get(key, ())] if index is not None else []


class Controller:
    def __init__(self, configuration: kubernetes.client.Configuration, events: EventRecorder, metrics: Metrics,
                 peering: Peering, coredns: tuple[str, str] | None, periods: Periods,
                 now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)) -> None:
        client = kubernetes.client.ApiClient(configuration)
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.events = events
        self.metrics = metrics
        self.peering = peering
        self.coredns = coredns
        self.now = now
        self.indexes: dict[str, Any] = {}
        self.loop = StepLoop("controller", periods, metrics.errors.inc, self.step)
        self.reported: frozenset[tuple[str, str, str]] = frozenset()
        self.synced = False
        self.active = not peering.name
        self.last_sync: float | None = None

    def attach(self, **indexes: Any) -> None:
        self.indexes = indexes

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
        obj = await asyncio.to_thread(self.custom.get_cluster_custom_object, "kopf.dev", "v1",
                                      "clusterkopfpeerings", self.peering.name, _request_timeout=10)
        return leader.is_active(obj.get("status"), self.peering.identity, self.peering.priority, self.now())

    async def sync(self) -> None:
        await self.sync_pools()
        await self.sync_dns()

    # --- LoadBalancer addresses

    async def sync_pools(self) -> None:
        pool_objs = {o["metadata"]["name"]: o for o in values(self.indexes.get("pools"))}
        valid, problems = pools.valid_pools(pool_objs.values())
        services = {svc.key: (svc, ref) for svc, ref in values(self.indexes.get("services"))}
        namespaces = dict(values(self.indexes.get("namespaces")))
        result = pools.allocate(valid, problems, [s for s, _ in services.values()], namespaces)
        for key, addresses in result.addresses.items():
            svc = services[key][0]
            if patch := status.service_status(svc.current, addresses):
                log.info("Service %s: load-balancer addresses %s", key, ", ".join(addresses) or "released")
                await self.write(f"Service {key}", self.core.patch_namespaced_service_status, svc.name,
                                 svc.namespace, patch)
        for name, obj in pool_objs.items():
            usage = result.usage.get(name)
            for state, count in (("allocated", usage.allocated if usage else 0),
                                 ("available", usage.available if usage else 0)):
                self.metrics.addresses.labels(name, state).set(count)
            if patch := status.pool_status(obj, usage, problems.get(name), self.now()):
                await self.write(f"LoadBalancerIPPool {name}", self.custom.patch_cluster_custom_object_status,
                                 GROUP, VERSION, "loadbalancerippools", name, patch)
        for gone in set(self._labelled_pools()) - set(pool_objs):
            for state in ("allocated", "available"):
                self.metrics.addresses.remove(gone, state)
        self.metrics.unserved.set(len(result.unserved))
        found = [(services[key][1], "AllocationFailed", why) for key, whys in result.unserved.items() for why in whys]
        found += [(_pool_ref(pool_objs[name]), problem.reason, problem.message) for name, problem in problems.items()]
        await self.report(found)

    async def write(self, what: str, patch: Callable[..., Any], *args: Any) -> None:
        """One status patch; a refusal (the object is gone, a conflict, no permission) is logged and
        counted, and the other objects are still written (the next sync tries again)."""
        try:
            await asyncio.to_thread(patch, *args, _request_timeout=10)
        except kubernetes.client.ApiException as e:
            log.warning("could not write the status of %s: %s %s", what, e.status, e.reason)
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
        configs = {o["metadata"]["name"]: o for o in values(self.indexes.get("dnsconfigs"))}
        result = dnsconfig.plan(configs, ClusterSettings())
        verdicts = dict(result.verdicts)
        if dnsconfig.USED in verdicts and verdicts[dnsconfig.USED].ok:
            verdicts[dnsconfig.USED] = await self.write_corefile(result.corefile)
        for name, verdict in verdicts.items():
            patch = status.dnsconfig_status(configs[name], verdict.ok, verdict.reason, verdict.message,
                                            verdict.problems, self.now())
            if patch:
                await self.write(f"DNSConfig {name}", self.custom.patch_cluster_custom_object_status,
                                 GROUP, VERSION, "dnsconfigs", name, patch)

    async def write_corefile(self, corefile: str | None) -> dnsconfig.Verdict:
        if self.coredns is None or corefile is None:
            return dnsconfig.Verdict(True, "Valid", "valid; CoreDNS's ConfigMap is not managed")
        ns, name = self.coredns
        where = f"ConfigMap {ns}/{name}"
        try:
            cm = await asyncio.to_thread(self.core.read_namespaced_config_map, name, ns, _request_timeout=10)
        except kubernetes.client.ApiException as e:
            if e.status != 404:
                raise
            return dnsconfig.Verdict(False, "ConfigMapMissing", f"{where} does not exist (CoreDNS is not installed?)")
        if (cm.data or {}).get("Corefile") != corefile:
            log.info("writing the Corefile to %s", where)
            await asyncio.to_thread(self.core.patch_namespaced_config_map, name, ns, {"data": {"Corefile": corefile}},
                                    _request_timeout=10)
            self.metrics.corefile_writes.inc()
        return dnsconfig.Verdict(True, "Applied", f"the Corefile is in {where}")


def _pool_ref(obj: Mapping[str, Any]) -> ObjectRef:
    md = obj.get("metadata") or {}
    return ObjectRef(f"{GROUP}/{VERSION}", "LoadBalancerIPPool", "", str(md.get("name", "")), str(md.get("uid", "")))
