"""What every component asks of Kopf (read-only settings and the login), and how it stops its own tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import kopf

from operators.kube.watching import observe_only
from operators.runtime.login import Credentials


def registry(credentials: Credentials, started: Callable[[dict[str, Any]], None] | None = None
             ) -> kopf.OperatorRegistry:
    """A registry that logs in with `credentials` and sets Kopf up to observe only; `started` gets the
    startup handler's arguments (Kopf's indices among them). The component adds its own handlers."""
    reg = kopf.OperatorRegistry()

    @kopf.on.startup(registry=reg)
    async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        observe_only(settings)
        if started is not None:
            started(kwargs)

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
