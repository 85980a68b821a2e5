"""Kubernetes Events on the objects at fault: which problems to post, the Event, and posting it.

Every sync recomputes all problems from the views, so the same problem shows up again and again.
`to_report` keeps only the new ones; a problem that went away and comes back is new again. The Event's
name is derived from the object's uid and the message, so the agents of all nodes, which all find the
same problem, make one Event between them, and a restarted component does not post the same Event
twice (the others get AlreadyExists).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

import aiohttp

from operators.kube.client import ApiError, Client, api_path
from operators.kube.parse import Problem
from operators.runtime.store import ObjectRef

log = logging.getLogger(__name__)
H = TypeVar("H", bound=Hashable)
P = TypeVar("P", bound=Problem)
EVENTS_PER_SYNC = 20  # the rest wait for the next sync: posting must not hold up programming for long


def to_report(reported: frozenset[H], found: Iterable[H]) -> tuple[list[H], frozenset[H]]:
    """The problems not reported yet (in order, once each), and the set to remember for the next sync."""
    current = dict.fromkeys(found)
    return [p for p in current if p not in reported], frozenset(current)


def event_name(ref: ObjectRef, message: str) -> str:
    digest = hashlib.sha256(f"{ref.uid}/{ref.kind}/{ref.name}/{message}".encode()).hexdigest()[:16]
    return f"{ref.name[:200]}.{digest}"


def event_body(ref: ObjectRef, reason: str, message: str, component: str, host: str,
               now: datetime.datetime) -> dict[str, Any]:
    """A core/v1 Warning Event about `ref` (Events of cluster-scoped objects live in `default`)."""
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(ref, message), "namespace": ref.namespace or "default"},
        "involvedObject": ref.involved_object(),
        "type": "Warning",
        "reason": reason,
        "message": message[:1024],
        "source": {"component": component, "host": host},
        "reportingComponent": f"knet.io/{component}",
        "reportingInstance": host,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventRecorder:
    """Posts Events as `component` (knet-agent, knet-ingress, knet-controller) from `host` (node or pod)."""

    def __init__(self, client: Client, component: str, host: str) -> None:
        self.client = client
        self.component = component
        self.host = host

    async def post(self, ref: ObjectRef, reason: str, message: str) -> bool:
        """Post one Event; False (logged) when the API server refused it or could not be reached."""
        body = event_body(ref, reason, message, self.component, self.host, datetime.datetime.now(datetime.UTC))
        try:
            await self.client.request("POST", api_path("v1", "events", body["metadata"]["namespace"]), body)
        except ApiError as e:
            if e.status == 409:  # another node (or an earlier run) posted it already
                return True
            log.warning("could not post an Event about %s %s/%s: %s", ref.kind, ref.namespace, ref.name, e)
            return False
        except (aiohttp.ClientError, TimeoutError, OSError) as e:  # retried at the next sync
            log.warning("could not post an Event about %s %s/%s: %s", ref.kind, ref.namespace, ref.name,
                        e or type(e).__name__)
            return False
        return True


async def post_new(new: list[P], ref_of: Callable[[P], ObjectRef | None], events: EventRecorder | None,
                   reason: str, on_error: Callable[[], None]) -> list[P]:
    """Log each new problem and post its Event (with `reason`) on the object it is about, the first
    EVENTS_PER_SYNC of them; returns the problems left unposted (over the limit, or a failed post), to be
    tried at the next sync."""
    unposted: list[P] = []
    for i, problem in enumerate(new):
        if i >= EVENTS_PER_SYNC:
            unposted.append(problem)
            continue
        log.warning("%s", problem)
        ref = ref_of(problem)
        if ref is not None and events is not None and not await events.post(ref, reason, problem.message):
            on_error()
            unposted.append(problem)
    return unposted



def problem_ref(problem: Problem, refs: Mapping[tuple[str, str, str], ObjectRef]) -> ObjectRef:
    """The watched object's reference (with its uid) by (kind, namespace, name), or one built from the problem."""
    return refs.get((problem.kind, problem.namespace, problem.name)) or ObjectRef(
        "v1", problem.kind, problem.namespace, problem.name, "")
