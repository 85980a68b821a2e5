"""Kopf settings shared by knet's read-only watchers (the agent, knet dns): they observe objects
they do not own, so they scan nothing, post no Events from log lines, and never give up on the API."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import kopf


class RetryForever:
    """Backoffs for Kopf's API requests without an end (not Sized: Kopf then never gives up)."""

    def __iter__(self) -> Iterator[float]:
        return itertools.chain((1, 2, 5), itertools.repeat(10))


def observe_only(settings: kopf.OperatorSettings) -> None:
    """No resource scanning (no RBAC on CRDs), no Events from logs, API requests retried forever, and
    watch timeouts that notice a silently dead connection (losing the API server must not stop us)."""
    settings.scanning.disabled = True
    settings.posting.enabled = False
    settings.networking.error_backoffs = RetryForever()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10

