"""CNI mode (`knet agent --cni`): the agent does kindnet's job on a cluster without another CNI plugin.

On every sync, from the views of every Node (`operators.kube.informer`, its own watch of all Nodes) the
pure core (`operators.cni.plan`) decides the node's CNI configuration list, its routes to the other nodes'
pods and the masquerade table; this loop applies them:
- the conflist is written once this node has podCIDRs, atomically (a temporary file the runtime ignores,
  then a rename) and only when its bytes differ from the file's: the runtime sees either the old file or
  the new one, and an unchanged file is never touched;
- routes over netlink (`operators.agent.routes`): knet's carry their own protocol number, so only knet's
  stale routes are removed;
- `table inet knet-cni` with one `nft -f` transaction, when its text changed or the table went missing.
Each part is tried on every sync even when another failed; a failure makes the loop retry sooner (the
schedule's backoff). Syncs run on Node changes and at least every max sync period (10 s, as kindnet's
loop), which also puts back a removed file, route or table. Problems (a node without podCIDRs, a peer
that cannot be routed to) are logged, counted and posted once as Events on the Node (reason CNIProblem).

The CNI side waits only for the Node listing, not for the proxy's and NetworkPolicy's objects: until the
conflist exists the node stays NotReady and no pod can start on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from operators.agent import dataplane, routes
from operators.agent.cni_metrics import CniMetrics
from operators.cni import conflist
from operators.cni.masquerade import TABLE, render_cleanup
from operators.cni.plan import plan
from operators.cni.routes import Route
from operators.kube.services import Node, Problem
from operators.proxy.model import ProxyConfig
from operators.runtime import schedule
from operators.runtime.events import EventRecorder, post_new, to_report
from operators.runtime.loop import SyncLoop
from operators.runtime.schedule import Kind, Periods
from operators.runtime.store import Entry, ObjectRef

log = logging.getLogger(__name__)
REASON = "CNIProblem"
Index = Iterable[Entry[Any]]  # a live collection the watches keep current


def write_conflist(path: Path, text: str) -> bool:
    """Put `text` in `path` unless it holds it already; whether it was written. The temporary file's name
    ends in `.tmp`, which the runtime's CNI loader skips (it reads .conf, .conflist and .json only)."""
    try:
        if path.read_text() == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass  # missing or unreadable: written below
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True


def remove_conflist(path: Path) -> str:
    """Delete the file if it is knet's (`operators.cni.conflist.is_ours`); a problem, or "" (also when there
    is no file)."""
    try:
        if not conflist.is_ours(path.read_text()):
            return f"{path} is not knet's (its name is not {conflist.NAME!r}); left in place"
        path.unlink()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as e:
        return f"{path}: {e}"
    log.info("removed the CNI configuration %s", path)
    return ""


class CniAgent(SyncLoop):
    side = "cni"

    def __init__(self, node: str, path: Path, mtu: int | None, periods: Periods, metrics: CniMetrics,
                 events: EventRecorder | None) -> None:
        super().__init__(periods, metrics.errors.labels("sync").inc)
        self.node = node
        self.path = path
        self.mtu = mtu  # None: the MTU of the link holding this node's InternalIP
        self.metrics = metrics
        self.events = events
        self.cluster_cidrs = ProxyConfig().cluster_cidrs
        self.nodes: Index = ()
        self.applied_masquerade: str | None = None
        self.reported: frozenset[Problem] = frozenset()

    # --- fed by the watches and the settings -------------------------------------------------------

    def attach(self, nodes: Index) -> None:
        self.nodes = nodes

    def configure(self, cluster_cidrs: Iterable[str], periods: Periods) -> None:
        """New settings (ClusterNetworkConfig): the pod ranges that are not masqueraded, the sync periods."""
        self.periods = periods
        if (cidrs := tuple(cluster_cidrs)) != self.cluster_cidrs:
            self.cluster_cidrs = cidrs
            if self.listed.is_set():
                self.changed()

    # --- the loop (`SyncLoop.run` calls `sync`) ---------------------------------------------------

    def views(self) -> tuple[tuple[Node, ...], tuple[Problem, ...], dict[str, ObjectRef]]:
        entries = list(self.nodes)
        return (tuple(e.view for e in entries if e.view is not None), tuple(p for e in entries for p in e.problems),
                {e.ref.name: e.ref for e in entries})

    async def link_mtu(self, nodes: Iterable[Node]) -> int | None:
        if self.mtu is not None:
            return self.mtu
        own = next((n for n in nodes if n.name == self.node), None)
        if own is None or not own.internal_ips:
            return None
        try:
            return await asyncio.to_thread(routes.link_mtu, own.internal_ips)
        except (OSError, NetlinkError) as e:
            log.warning("cannot read the MTU of this node's link: %s", e)
            return None

    async def sync(self, now: float) -> None:
        self.state = schedule.started(self.state, now)
        nodes, parse_problems, refs = self.views()
        wanted = plan(self.node, nodes, self.cluster_cidrs, await self.link_mtu(nodes))
        failed = [await self.apply_conflist(wanted.conflist), await self.apply_routes(wanted.routes),
                  await self.apply_masquerade(wanted.masquerade)]
        ok = not any(failed)
        self.state = schedule.finished(self.state, now, Kind.FULL, ok=ok)
        if ok:
            self.metrics.last_sync.set(time.time())
        await self.report(refs, [*parse_problems, *wanted.problems])

    async def apply_conflist(self, text: str | None) -> bool:
        """Write the conflist if it changed; whether that failed."""
        if text is None:
            return False
        try:
            written = await asyncio.to_thread(write_conflist, self.path, text)
        except OSError as e:
            log.error("cannot write the CNI configuration %s: %s", self.path, e)
            self.metrics.errors.labels("conflist").inc()
            return True
        if written:
            log.info("wrote the CNI configuration %s", self.path)
            self.metrics.conflist_writes.inc()
        return False

    async def apply_routes(self, wanted: frozenset[Route]) -> bool:
        """Reconcile the peer routes; whether any change failed."""
        try:
            outcome = await asyncio.to_thread(routes.reconcile, wanted)
        except (OSError, NetlinkError) as e:  # netlink itself failed (no socket, no permission)
            log.error("cannot reconcile the routes to the other nodes' pods: %s", e)
            self.metrics.errors.labels("route").inc()
            return True
        for route in outcome.added:
            log.info("route to pods: %s", route)
        for route in outcome.removed:
            log.info("route to pods removed: %s", route)
        for err in outcome.errors:
            log.error("%s", err)
        self.metrics.route_changes.labels("add").inc(len(outcome.added))
        self.metrics.route_changes.labels("remove").inc(len(outcome.removed))
        self.metrics.errors.labels("route").inc(len(outcome.errors))
        self.metrics.routes.set(len(wanted) - outcome.unrouted)
        return bool(outcome.errors)

    async def apply_masquerade(self, text: str) -> bool:
        """Replace `table inet knet-cni` if its text changed or it is missing; whether that failed."""
        try:
            present = await dataplane.table_present(TABLE)
            if present and text == self.applied_masquerade:
                return False
            if not present and self.applied_masquerade is not None:
                log.warning("table inet %s was removed by someone else; restoring it", TABLE)
                self.metrics.errors.labels("table-missing").inc()
            ok, err = await dataplane.nft_apply(text)
        except (OSError, NetlinkError) as e:  # no libnftables, no nf_tables in the kernel
            ok, err = False, str(e)
        if not ok:
            log.error("nft transaction of table inet %s failed, the previous one stays: %s", TABLE, err)
            self.metrics.errors.labels("nft").inc()
            self.applied_masquerade = None
            return True
        self.applied_masquerade = text
        return False

    async def report(self, refs: dict[str, ObjectRef], problems: list[Problem]) -> None:
        """An Event (once) per problem, on the Node it is about."""
        new, self.reported = to_report(self.reported, problems)
        self.metrics.nodes_with_problems.set(len({p.name for p in problems}))
        unposted = await post_new(new, lambda p: refs.get(p.name) if p.kind == "Node" else None,
                                  self.events, REASON, self.metrics.errors.labels("event").inc)
        self.reported -= frozenset(unposted)  # tried again at the next sync (at most a max period away)


async def remove(path: Path) -> list[str]:
    """Undo CNI mode on this node (uninstall): the conflist (if knet's), knet's routes, the masquerade table;
    the problems, if any."""
    problems = []
    if err := await asyncio.to_thread(remove_conflist, path):
        problems.append(f"CNI configuration: {err}")
    try:
        problems += [f"routes: {err}" for err in await asyncio.to_thread(routes.remove_all)]
    except (OSError, NetlinkError) as e:
        problems.append(f"routes: {e}")
    try:
        ok, err = await dataplane.nft_apply(render_cleanup())
    except OSError as e:
        ok, err = False, str(e)
    if not ok:
        problems.append(f"table inet {TABLE}: {err}")
    return problems
