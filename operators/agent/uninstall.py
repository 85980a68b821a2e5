"""Removing the agent's rules from its node: on request (`knet agent --cleanup`, as kube-proxy's
`--cleanup`) and when knet is uninstalled, but never when the agent merely restarts.

A stopping agent cannot tell an uninstall from a restart by the signal alone (both are SIGTERM), so
it asks the API server about the DaemonSet it belongs to (`--daemonset NAMESPACE/NAME`, which the
chart passes): gone or being deleted means knet is being uninstalled. An answer that is no answer
about the DaemonSet (401, 403: refused credentials; an error; silence) never counts as an uninstall by
itself: an expired token or an RBAC slip during a rolling update must not empty a node. But
`helm uninstall` deletes the agent's ServiceAccount and RBAC right after the DaemonSet, before the pods
get their SIGTERM, so such an answer is the usual one at an uninstall. Hence the agent watches its
DaemonSet while it runs (`DaemonSetWatch`): what the watch last saw (deleted, or being deleted) decides
when the last read cannot. `decide` is the rule, pure.

In CNI mode (`--cni`), removing also undoes that mode (`operators.agent.cni.remove`): the conflist (only
if it is knet's), knet's routes to the other nodes' pods and `table inet knet-cni`. The node then has no
pod network, as after deleting kindnet: knet was its CNI. Without `--cni` none of these is touched, so
an agent beside another CNI never removes that CNI's files.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from operators.agent import dataplane
from operators.kube.client import ApiError, Client, Connection, api_path
from operators.kube.informer import Resource
from operators.netpol.nftables import TABLE as NETPOL_TABLE

log = logging.getLogger(__name__)

PRESENT, DELETING, GONE, UNKNOWN = "present", "being deleted", "gone", "unknown"


class DaemonSetWatch:
    """The agent's DaemonSet as its watch last saw it (fed by an informer while the agent runs)."""

    def __init__(self, daemonset: str) -> None:
        namespace, _, self.name = daemonset.partition("/")
        self.resource = Resource("apps/v1", f"namespaces/{namespace}/daemonsets",
                                 field_selector=f"metadata.name={self.name}")
        self.state = UNKNOWN

    def handle(self, kind: str, obj: Mapping[str, Any]) -> None:
        deleting = (obj.get("metadata") or {}).get("deletionTimestamp")
        self.state = GONE if kind == "DELETED" else DELETING if deleting else PRESENT


def decide(status: int | None, deleting: bool, seen: str) -> str:
    """Why knet counts as uninstalled, or "" to keep the rules. `status` is the answer to the read at stop
    (200, 404, 401, ...; None: no answer), `deleting` whether a 200 showed a deletionTimestamp, and `seen`
    what the watch last saw. Only the DaemonSet itself, read now or watched before, says uninstall."""
    if status == 200:
        return f"the DaemonSet is {DELETING}" if deleting else ""
    if status == 404:
        return f"the DaemonSet is {GONE}"
    if seen in (DELETING, GONE):
        return f"the DaemonSet was seen {seen}, and now cannot be read ({status or 'no answer'})"
    return ""


async def read_daemonset(connection: Connection, daemonset: str) -> tuple[int | None, bool]:
    """(HTTP status, whether it is being deleted) of one read of the agent's DaemonSet; None: no answer."""
    namespace, _, name = daemonset.partition("/")
    client = Client(connection)
    try:
        ds = await client.request("GET", api_path("apps/v1", "daemonsets", namespace, name), timeout=5)
    except ApiError as e:
        return e.status, False
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return None, False
    finally:
        await client.close()
    return 200, bool(((ds or {}).get("metadata") or {}).get("deletionTimestamp"))


async def remove_rules(cni_conflist: str | None = None) -> list[str]:
    """Delete every table and chain the agent may have made (both proxy modes and NetworkPolicy), and with
    `cni_conflist` (CNI mode's conflist path) what CNI mode made; the problems, if any. Deleting what is not
    there is no error."""
    problems = []
    for mode, rules in dataplane.MODES.items():
        ok, err = await rules().cleanup()
        if not ok:
            problems.append(f"{mode} rules: {err}")
    ok, err = await dataplane.nft_apply(f"add table inet {NETPOL_TABLE}\ndelete table inet {NETPOL_TABLE}\n")
    if not ok:
        problems.append(f"NetworkPolicy table: {err}")
    if cni_conflist:
        from operators.agent import cni
        problems += [f"CNI mode's {p}" for p in await cni.remove(Path(cni_conflist))]
    return problems


def cleanup(cni_conflist: str | None = None) -> int:
    """`knet agent --cleanup [--cni]`: remove the rules now and say what could not be removed (exit code 1)."""
    problems = asyncio.run(remove_rules(cni_conflist))
    for problem in problems:
        print(f"error: could not remove the {problem}", file=sys.stderr)
    return 1 if problems else 0


def after_stop(connection: Connection, daemonset: str, seen: str = UNKNOWN, cni_conflist: str | None = None) -> None:
    """Called once the agent stopped: remove the rules (and CNI mode's, with `cni_conflist`) if knet is being
    uninstalled, else keep them. `seen`: what the agent's watch of its DaemonSet last saw."""
    why = decide(*asyncio.run(read_daemonset(connection, daemonset)), seen)
    if not why:
        log.info("stopped; the rules stay in place (DaemonSet %s is there, or nothing says it is not)", daemonset)
        return
    problems = asyncio.run(remove_rules(cni_conflist))
    log.info("knet is being uninstalled (%s): removed the rules from this node%s", why,
             "; problems: " + "; ".join(problems) if problems else "")
