"""NetworkPolicy enforcement in the agent: views -> `compile_node` -> `build_table` -> one `nft -f`.

The same shape as the proxy's sync, each with its own loop (`operators.runtime.loop`), schedule and table
(`inet knet-netpol`), so a failure on one side never holds up the other. The whole table is built on
every change (as objects, compared first: no change, no transaction); a full sync replaces the table
in one transaction, an incremental one applies only the elements, sets, chains and counters that
changed (`operators.nft.table.diff_table`, as the proxy does). Established flows pass the first rule
of every base chain, so neither cuts them.

The window between a pod starting and its isolation: the ruleset drops traffic of local pod-CIDR
addresses that are not in its `local-pods` set (`isolate_unprogrammed`), so a pod the agent has not
programmed yet is cut off rather than open; it gets its rules (isolated or not) with the first sync
after its address reaches the agent. Options come from ClusterNetworkConfig `default` through the
agent's settings (`operators.agent.config`), which call `configure`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from operators.agent import dataplane
from operators.agent.config import PolicyOptions
from operators.agent.netpol_conntrack import disallowed, parse_flows
from operators.agent.netpol_metrics import NetpolMetrics
from operators.kube.parse import Problem
from operators.kube.pods import Namespace, Pod, parse_namespace, parse_pod
from operators.kube.services import Node
from operators.netpol.compiler import Compiler, compile_node
from operators.netpol.model import NodeModel
from operators.netpol.nftables import TABLE, RenderOptions, build_table, counter_names, ruleset_text
from operators.netpol.policy import Policy, PolicyRef, parse_policy
from operators.nft.table import Table, diff_table
from operators.runtime import schedule
from operators.runtime.events import EventRecorder, post_new, to_report
from operators.runtime.loop import SyncLoop
from operators.runtime.schedule import Kind, Periods
from operators.runtime.store import Entry, ObjectRef

log = logging.getLogger(__name__)
REASON = "NetworkPolicyProblem"
Index = Iterable[Entry[Any]]  # a live collection the watches keep current


def _ref(body: Mapping[str, Any], api_version: str, kind: str) -> ObjectRef:
    md = body.get("metadata") or {}
    return ObjectRef(api_version, kind, str(md.get("namespace") or ""), str(md.get("name") or ""),
                     str(md.get("uid") or ""))


def policy_entry(body: Mapping[str, Any]) -> Entry[Policy]:
    view, problems = parse_policy(dict(body))
    return Entry(view, tuple(problems), _ref(body, "networking.k8s.io/v1", "NetworkPolicy"))


def pod_entry(body: Mapping[str, Any]) -> Entry[Pod]:
    """Pods' own problems (odd labels or ports) are not the policies' business: not reported here."""
    view, _ = parse_pod(body)
    return Entry(view, (), _ref(body, "v1", "Pod"))


def namespace_entry(body: Mapping[str, Any]) -> Entry[Namespace]:
    view, _ = parse_namespace(body)
    return Entry(view, (), _ref(body, "v1", "Namespace"))


@dataclass(frozen=True)
class Views:
    policies: tuple[Policy, ...]
    pods: tuple[Pod, ...]
    namespaces: tuple[Namespace, ...]
    node: Node | None
    problems: tuple[Problem, ...]
    refs: Mapping[tuple[str, str], ObjectRef]  # policy (namespace, name) -> ref


async def _output(argv: list[str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace").strip()


class NetpolAgent(SyncLoop):
    side = "netpol"

    def __init__(self, node: str, periods: Periods, metrics: NetpolMetrics, events: EventRecorder | None) -> None:
        super().__init__(periods, metrics.errors.labels("sync").inc)
        self.node = node
        self.metrics = metrics
        self.events = events
        self.options = PolicyOptions()
        self.applied_table: Table | None = None
        self.applied: NodeModel | None = None
        self.compiler = Compiler()  # keeps the peers' addresses between syncs
        self.counted: dict[str, PolicyRef] = {}  # counter name -> policy, of the applied ruleset
        self.counts: dict[str, int] = {}  # counter name -> packets already added to the metrics
        self.reported: frozenset[Problem] = frozenset()
        self.retry_reports = False
        self.indices: tuple[Index, Index, Index, Index] | None = None

    # --- fed by the watches ---------------------------------------------------------------------

    def attach(self, policies: Index, pods: Index, namespaces: Index, nodes: Index) -> None:
        self.indices = (policies, pods, namespaces, nodes)

    def configure(self, options: PolicyOptions, periods: Periods) -> None:
        """New settings (ClusterNetworkConfig): a sync with them is due if the watches listed everything."""
        self.periods = periods
        self.metrics.options.labels("dropLogging").set(options.drop_logging)
        self.metrics.options.labels("strictMode").set(options.strict_mode)
        if options != self.options:
            log.info("NetworkPolicy options: %s", options)
            self.options = options
            if self.listed.is_set():
                self.changed()

    # --- the loop (`SyncLoop.run` calls `sync`) ---------------------------------------------------

    def views(self) -> Views:
        policies, pods, namespaces, nodes = (list(index) for index in self.indices or ((), (), (), ()))
        node = next((e.view for e in nodes if e.view is not None and e.view.name == self.node), None)
        return Views(
            tuple(e.view for e in policies if e.view is not None),
            tuple(e.view for e in pods if e.view is not None),
            tuple(e.view for e in namespaces if e.view is not None),
            node,
            tuple(p for e in policies for p in e.problems),
            {(e.ref.namespace, e.ref.name): e.ref for e in policies},
        )

    def render_options(self, policies_exist: bool = True) -> RenderOptions:
        """New pods are cut off until programmed only while some NetworkPolicy exists: with none, there is
        nothing to isolate them from, and cutting them off would drop each new pod's first packets (its
        first DNS query waits out the resolver's 5 s timeout)."""
        on = self.options.drop_logging
        return RenderOptions(log_drops=on, counters=on, isolate_unprogrammed=policies_exist)

    async def sync(self, now: float) -> None:
        dirty_since = self.state.dirty_since
        changed = dirty_since is not None or self.retry_reports
        self.state = schedule.started(self.state, now)
        present = await dataplane.table_present(TABLE)
        if not present and self.applied_table is not None:
            log.warning("table inet %s was removed by someone else; restoring it", TABLE)
            self.metrics.errors.labels("table-missing").inc()
        if schedule.kind_of_sync(self.state, now, self.periods, present, changed) is Kind.NONE:
            self.state = schedule.finished(self.state, now, Kind.NONE, ok=True)
            await self.read_counters()
            return
        v = self.views()
        cidrs = [ipaddress.ip_network(c) for c in (v.node.pod_cidrs if v.node else ())]
        model = compile_node(v.policies, v.pods, v.namespaces, self.node, compiler=self.compiler)
        table = build_table(model, cidrs, self.render_options(bool(v.policies)))
        kind = schedule.kind_of_sync(self.state, now, self.periods, present, table != self.applied_table)
        await self.read_counters()  # every sync (before a transaction restarts some of the counters)
        if kind is not Kind.NONE:
            ok, err, kept = await self.apply(kind, table)
            if not ok:
                log.error("nft netpol transaction failed, the previous rules stay: %s", err)
                self.metrics.errors.labels("nft").inc()
                self.state = schedule.finished(self.state, now, kind, ok=False)
                return
            self.metrics.sync_duration.labels(kind.value).observe(time.monotonic() - now)
            if dirty_since is not None:
                self.metrics.programming_latency.observe(time.monotonic() - dirty_since)
            self.applied_table = table
            self.counts = {name: n for name, n in self.counts.items() if name in kept}
            counting = self.render_options().counters  # else every sync would list counters that are not there
            self.counted = {name: ref for ref in model.policies for name in counter_names(ref.id)} if counting else {}
            log.info("%s netpol sync: %d local pods, %d isolating policies", kind.value, len(model.pods),
                     len(model.policies))
        previous, self.applied = self.applied, model
        self.state = schedule.finished(self.state, now, kind, ok=True)
        self.record(model)
        if self.options.strict_mode and previous is not None and previous != model:
            await self.cut(model, v.node.internal_ips if v.node else ())
        problems = [*v.problems, *model.problems]
        await self.report(v, problems)

    async def apply(self, kind: Kind, table: Table) -> tuple[bool, str, frozenset[str]]:
        """Only what changed (`diff_table`) in an incremental sync, else the whole table; (ok, error,
        counters left untouched, which keep counting). A failed diff falls back to replacing the table."""
        old = self.applied_table
        step = diff_table(old, table) if kind is Kind.INCREMENTAL and old is not None else None
        if old is not None and step is not None:
            ok, err = await dataplane.nft_apply(step) if step else (True, "")
            if ok:
                return True, "", frozenset(k.name for k in old.counters) & {k.name for k in table.counters}
            log.warning("incremental netpol transaction failed, replacing the table: %s", err)
            self.metrics.errors.labels("nft").inc()
        ok, err = await dataplane.nft_apply(ruleset_text(table, self.node))
        return ok, err, frozenset()

    def record(self, model: NodeModel) -> None:
        m = self.metrics
        m.last_sync.set(time.time())
        m.policies.set(len(model.policies))
        for direction in ("ingress", "egress"):
            m.isolated_pods.labels(direction).set(sum(1 for p in model.pods if p.chain(direction)))

    async def read_counters(self) -> None:
        """Add the ruleset's per-policy counters to the metrics (they restart at zero with each table)."""
        if not self.counted:
            return
        code, out, err = await _output(["nft", "-j", "list", "counters", "table", "inet", TABLE])
        if code != 0:
            log.warning("cannot read the netpol counters: %s", err)
            self.metrics.errors.labels("counters").inc()
            return
        for item in json.loads(out).get("nftables", []):
            counter = item.get("counter")
            ref = self.counted.get(counter.get("name", "")) if counter else None
            if ref is None:
                continue
            packets = int(counter.get("packets", 0))
            delta = packets - self.counts.get(counter["name"], 0)
            self.counts[counter["name"]] = packets
            metric = self.metrics.drops if counter["name"].endswith("-drop") else self.metrics.allowed
            if delta > 0:
                metric.labels(ref.namespace, ref.name).inc(delta)

    async def cut(self, model: NodeModel, node_ips: Iterable[str]) -> None:
        """Strict mode: delete the conntrack entries of flows the new rules would not let start."""
        flows = []
        for family in ("ipv4", "ipv6"):
            code, out, err = await _output(["conntrack", "-L", "-f", family])
            if code != 0:
                log.warning("conntrack -L failed: %s", err)
                self.metrics.errors.labels("conntrack").inc()
                return
            flows += parse_flows(out)
        for flow in disallowed(flows, model, node_ips):
            code, err = await dataplane.run(flow.argv())
            if code == 0 or dataplane.NOTHING_DELETED in err:
                self.metrics.cut.inc()
            else:
                log.warning("%s failed: %s", " ".join(flow.argv()), err)
                self.metrics.errors.labels("conntrack").inc()
        self.metrics.cut_passes.inc()

    async def report(self, v: Views, problems: list[Problem]) -> None:
        """An Event (once) per problem of a policy that cannot be enforced exactly as written."""
        new, self.reported = to_report(self.reported, problems)
        self.metrics.policies_with_problems.set(len({(p.namespace, p.name) for p in problems}))
        unposted = await post_new(new, lambda p: v.refs.get((p.namespace, p.name)),
                                  self.events, REASON, self.metrics.errors.labels("event").inc)
        self.reported -= frozenset(unposted)
        self.retry_reports = bool(unposted)
