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


class ApiWriter:
    """A writer that writes until the API server answers that the chart does not grant it (403): from then on
    it leaves the objects to others, saying so once."""

    error_kind = "status"  # the errors metric's label for a failed write
    given_up = "leaving it to others"  # logged when a 403 turns writing off

    def __init__(self, client: Client | None, metrics: Metrics) -> None:
        self.api = client  # None: nothing is written
        self.metrics = metrics

    async def write_one(self, method: str, path: str, body: Mapping[str, Any] | None, content_type: str,
                        what: str, skip: tuple[int, ...] = (404, 409)) -> bool:
        """Whether the write was done (`send`); a 403 turns this writer off."""
        if self.api is None:
            return False
        result = await send(self.api, method, path, body, content_type, what, self.metrics, self.error_kind, skip)
        if result == FORBIDDEN:
            log.warning("%s", self.given_up)
            self.api = None
        return result == DONE
