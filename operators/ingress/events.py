"""Kubernetes Events on the Ingresses (and Secrets, Services, ...) at fault, posted once per problem.

Deduplication and Event names are the agent's (`operators.agent.events`): every sync recomputes all
problems, only new ones are posted, and the name is derived from the object and the message, so a
restarted controller does not post the same Event twice (it gets AlreadyExists).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

import kubernetes

from operators.agent.events import event_name
from operators.agent.store import ObjectRef
from operators.kube.parse import Problem

COMPONENT = "knet-ingress"
log = logging.getLogger(__name__)


def event_body(ref: ObjectRef, reason: str, message: str, host: str, now: datetime.datetime,
               component: str = COMPONENT) -> dict[str, Any]:
    """A core/v1 Warning Event about `ref` (`component`: knet-ingress, knet-controller)."""
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


def ref_of(problem: Problem, refs: dict[tuple[str, str, str], ObjectRef]) -> ObjectRef:
    """The watched object's reference (with its uid), or one built from the problem."""
    return refs.get((problem.kind, problem.namespace, problem.name)) or ObjectRef(
        "v1", problem.kind, problem.namespace, problem.name, "")


class EventRecorder:
    """Posts Events with the kubernetes client (in a thread: the client is synchronous)."""

    def __init__(self, configuration: kubernetes.client.Configuration, host: str, component: str = COMPONENT) -> None:
        self.api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))
        self.host = host
        self.component = component

    def _post(self, body: dict[str, Any]) -> None:
        try:
            self.api.create_namespaced_event(body["metadata"]["namespace"], body, _request_timeout=10)
        except kubernetes.client.ApiException as e:
            if e.status != 409:
                raise

    async def post(self, ref: ObjectRef, reason: str, message: str) -> bool:
        """Post one Event; False (logged) when the API server refused it or could not be reached."""
        body = event_body(ref, reason, message, self.host, datetime.datetime.now(datetime.UTC), self.component)
        try:
            await asyncio.to_thread(self._post, body)
        except Exception as e:  # noqa: BLE001 - any client failure: retried at the next sync
            log.warning("could not post an Event about %s %s/%s: %s", ref.kind, ref.namespace, ref.name, e)
            return False
        return True
