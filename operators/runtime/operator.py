"""What every component asks of Kopf (read-only settings and the login), and how it stops its own tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import kopf

from operators.kube.watching import observe_only
from operators.runtime.login import Credentials


def registry(credentials: Credentials) -> kopf.OperatorRegistry:
    """A registry that logs in with `credentials` and sets Kopf up to observe only; the component adds
    its own handlers."""
    reg = kopf.OperatorRegistry()

    @kopf.on.startup(registry=reg)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        observe_only(settings)

    @kopf.on.login(registry=reg)
    def authenticate(**_: Any) -> kopf.ConnectionInfo:
        return credentials.connection_info()

    return reg


async def cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel the component's tasks and wait for each to end."""
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
