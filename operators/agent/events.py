"""Kubernetes Events on the objects the proxy could not (fully) program: which to post, and posting them.

Every sync recomputes all problems from the views, so the same problem shows up again and again.
`to_report` keeps only the new ones; a problem that went away and comes back is new again. The
Event's name is derived from the object's uid and the message, so the agents of all nodes, which
all find the same problem, make one Event between them (the others get AlreadyExists).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import kubernetes

from operators.agent.store import ObjectRef
from operators.kube.services import Problem

REASON = "ProxyProblem"
COMPONENT = "knet-agent"
log = logging.getLogger(__name__)


def to_report(reported: frozenset[Problem], found: Iterable[Problem]) -> tuple[list[Problem], frozenset[Problem]]:
    """The problems not reported yet (in order, once each), and the set to remember for the next sync."""
    current = dict.fromkeys(found)
    return [p for p in current if p not in reported], frozenset(current)


EVENTS_PER_SYNC = 20  # the rest wait for the next sync: posting must not hold up programming for long


async def post_new(new: list[Problem], ref_of: Callable[[Problem], ObjectRef | None],
                   post: Callable[[Problem, ObjectRef], Awaitable[bool]] | None,
                   on_error: Callable[[], None]) -> list[Problem]:
    """Log each new problem and post its Event on the object it is about, the first EVENTS_PER_SYNC of them;
    returns the problems left unposted (over the limit, or a failed post), to be tried at the next sync."""
    unposted: list[Problem] = []
    for i, problem in enumerate(new):
        if i >= EVENTS_PER_SYNC:
            unposted.append(problem)
            continue
        log.warning("%s", problem)
        ref = ref_of(problem)
        if ref is not None and post is not None and not await post(problem, ref):
            on_error()
            unposted.append(problem)
    return unposted


def event_name(ref: ObjectRef, message: str) -> str:
    digest = hashlib.sha256(f"{ref.uid}/{ref.kind}/{ref.name}/{message}".encode()).hexdigest()[:16]
    return f"{ref.name[:200]}.{digest}"


def event_body(problem: Problem, ref: ObjectRef, node: str, now: datetime.datetime) -> dict[str, Any]:
    """A core/v1 Warning Event about `ref` (Events of cluster-scoped objects live in `default`)."""
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(ref, problem.message), "namespace": ref.namespace or "default"},
        "involvedObject": ref.involved_object(),
        "type": "Warning",
        "reason": REASON,
        "message": problem.message[:1024],
        "source": {"component": COMPONENT, "host": node},
        "reportingComponent": f"knet.io/{COMPONENT}",
        "reportingInstance": node,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventRecorder:
    """Posts Events with the kubernetes client (in a thread: the client is synchronous)."""

    def __init__(self, configuration: kubernetes.client.Configuration, node: str) -> None:
        self.api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))
        self.node = node

    def _post(self, body: dict[str, Any]) -> None:
        try:
            self.api.create_namespaced_event(body["metadata"]["namespace"], body, _request_timeout=10)
        except kubernetes.client.ApiException as e:
            if e.status != 409:  # 409: another node (or an earlier run) posted it already
                raise

    async def post(self, problem: Problem, ref: ObjectRef) -> bool:
        """Post one Event; False (logged) when the API server refused it or could not be reached."""
        body = event_body(problem, ref, self.node, datetime.datetime.now(datetime.UTC))
        try:
            await asyncio.to_thread(self._post, body)
        except Exception as e:  # noqa: BLE001 - any client failure: retried at the next sync
            log.warning("could not post an Event about %s: %s", problem, e)
            return False
        return True
