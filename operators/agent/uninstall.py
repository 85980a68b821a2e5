"""Removing the agent's rules from its node: on request (`knet agent --cleanup`, as kube-proxy's
`--cleanup`) and when knet is uninstalled, but never when the agent merely restarts.

A stopping agent cannot tell an uninstall from a restart by the signal alone (both are SIGTERM), so
it asks the API server about the DaemonSet it belongs to (`--daemonset NAMESPACE/NAME`, which the
chart passes): gone or being deleted means knet is being uninstalled. So do 401 and 403 answers,
because `helm uninstall` deletes the agent's ServiceAccount and RBAC right after the DaemonSet,
before the pods get their SIGTERM. Anything else (the DaemonSet is there: a rolling update, a
deleted pod, a node drain; or no answer: the API server is down) keeps the rules, since Services
must keep working while the agent is away.

In CNI mode (`--cni`), removing also undoes that mode (`operators.agent.cni.remove`): the conflist (only
if it is knet's), knet's routes to the other nodes' pods and `table inet knet-cni`. The node then has no
pod network, as after deleting kindnet: knet was its CNI. Without `--cni` none of these is touched, so
an agent beside another CNI never removes that CNI's files.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import kubernetes
import urllib3

from operators.agent import dataplane
from operators.netpol.nftables import TABLE as NETPOL_TABLE

log = logging.getLogger(__name__)

# The answers that mean "the installation this agent belonged to is gone".
REMOVED = {401: "our credentials are no longer accepted", 403: "our permissions were removed",
           404: "the DaemonSet is gone"}


def installation_removed(config: kubernetes.client.Configuration, daemonset: str) -> str:
    """Why the agent's DaemonSet counts as uninstalled, or "" when it is there or cannot be asked."""
    namespace, _, name = daemonset.partition("/")
    api = kubernetes.client.AppsV1Api(kubernetes.client.ApiClient(config))
    try:
        ds = api.read_namespaced_daemon_set(name, namespace, _request_timeout=5)
    except kubernetes.client.ApiException as e:
        return REMOVED.get(e.status, "")
    except (urllib3.exceptions.HTTPError, OSError):
        return ""
    return "the DaemonSet is being deleted" if ds.metadata.deletion_timestamp else ""


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


def after_stop(config: kubernetes.client.Configuration, daemonset: str, cni_conflist: str | None = None) -> None:
    """Called once the agent stopped: remove the rules (and CNI mode's, with `cni_conflist`) if knet is being
    uninstalled, else keep them."""
    why = installation_removed(config, daemonset)
    if not why:
        log.info("stopped; the rules stay in place (DaemonSet %s is there, or the API server cannot tell)",
                 daemonset)
        return
    problems = asyncio.run(remove_rules(cni_conflist))
    log.info("knet is being uninstalled (%s): removed the rules from this node%s", why,
             "; problems: " + "; ".join(problems) if problems else "")
