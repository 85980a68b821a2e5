"""One write to the API server, as every writer of the ingress controller makes it: the answer sorted into
what the writer does next, the failure logged and counted once here."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from operators.ingress.metrics import Metrics
from operators.kube.client import ApiError, Client

log = logging.getLogger(__name__)
DONE, FORBIDDEN, SKIPPED, FAILED = "done", "forbidden", "skipped", "failed"


def terminating(e: ApiError) -> bool:
    """A 403 that is no missing grant: nothing new may be created in a namespace being deleted."""
    return "being terminated" in e.message


async def send(api: Client, method: str, path: str, body: Mapping[str, Any] | None, content_type: str, what: str,
               metrics: Metrics, error_kind: str, skip: tuple[int, ...] = (404, 409)) -> str:
    """DONE; FORBIDDEN (403: the chart does not grant it, the writer stops); SKIPPED for the statuses in `skip`
    (the object went away or changed meanwhile: the next sync decides again) and for a create in a namespace
    being deleted; FAILED otherwise (logged and
    counted as an `error_kind` error; retried at the next sync)."""
    try:
        await api.request(method, path, None if body is None else dict(body), content_type)
        return DONE
    except ApiError as e:
        if e.status == 403 and not terminating(e):
            log.warning("no permission for %s (%s)", what, e.message)
            return FORBIDDEN
        if e.status in skip or e.status == 403:
            return SKIPPED
        log.warning("%s failed: %s", what, e.message)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
        log.warning("%s failed: %s", what, e)
    metrics.errors.labels(error_kind).inc()
    return FAILED
