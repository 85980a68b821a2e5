"""The supervised nginx: start it, reload it gracefully (HUP), restart it when it dies, push endpoints.

nginx runs in the foreground (`daemon off` in the rendered config) as the controller's child, so the
controller sees it exit; it is asked to die with the controller (PR_SET_PDEATHSIG), so a killed
controller never leaves a master holding the listening ports. It runs in its own process group: when
the master dies, its orphaned workers (which still hold the listening sockets) are killed with it
before a new master starts. Endpoints go to the control socket that
the dynamic-endpoints config serves (`render.py`), which a reload does not lose (the shared dict
survives it), but they are pushed again after every start and reload all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from operators.ingress.render import Runtime

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def parse_stub_status(text: str) -> dict[str, int]:
    """`Active connections: 1 / server accepts handled requests / 16 16 31 / Reading: 0 Writing: 1 Waiting: 0`."""
    numbers = re.findall(r"\d+", text)
    if len(numbers) != 7:
        return {}
    keys = ("active", "accepted", "handled", "requests", "reading", "writing", "waiting")
    return dict(zip(keys, map(int, numbers), strict=True))


class NginxError(Exception):
    pass


class Nginx:
    """One nginx master for `runtime`, reading `<prefix>/nginx.conf`."""

    def __init__(self, runtime: Runtime, binary: str = "nginx") -> None:
        self.rt = runtime
        self.binary = binary
        self.conf = Path(runtime.prefix) / "nginx.conf"
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, timeout: float = 15) -> None:
        """Start the master and wait until its status server answers; NginxError if it does not."""
        Path(self.rt.control_socket).unlink(missing_ok=True)  # left by a killed master: nginx would not bind
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "-c", str(self.conf), "-p", self.rt.prefix + "/", preexec_fn=_die_with_parent,
            start_new_session=True)
        log.info("nginx started (pid %d)", self.proc.pid)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if not self.running:
                raise NginxError(f"nginx exited with status {self.proc.returncode} at start")
            if await self.healthy():
                return
            await asyncio.sleep(0.1)
        raise NginxError(f"nginx did not answer on 127.0.0.1:{self.rt.status_port} within {timeout}s")

    def reload(self) -> None:
        """Graceful reload: the master reads the new config; old workers finish their requests."""
        if self.proc is None or not self.running:
            raise NginxError("nginx is not running")
        self.proc.send_signal(signal.SIGHUP)

    async def _status_page(self, path: str) -> str | None:
        if not self.running:
            return None
        try:
            async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                        session.get(f"http://127.0.0.1:{self.rt.status_port}{path}") as r):
                return await r.text() if r.status == 200 else None
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None

    async def healthy(self) -> bool:
        return await self._status_page("/healthz") is not None

    async def stub_status(self) -> dict[str, int]:
        """nginx's own counters (stub_status): connections by state, and requests since the master started."""
        return parse_stub_status(await self._status_page("/nginx_status") or "")

    async def push_endpoints(self, body: str, attempts: int = 20) -> str:
        """POST the endpoint lines to the control socket (retried while a reload starts the workers)."""
        last: Exception | None = None
        for _ in range(attempts):
            try:
                connector = aiohttp.UnixConnector(path=self.rt.control_socket)
                async with (aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as s,
                            s.post("http://localhost/endpoints", data=body.encode()) as r):
                    text = await r.text()
                    if r.status == 200:
                        return text.strip()
                    last = NginxError(f"control socket answered {r.status}: {text.strip()}")
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                last = e
            await asyncio.sleep(0.25)
        raise NginxError(f"cannot push endpoints: {last}")

    async def supervise(self, restarted: Callable[[], Awaitable[None]], backoff: float = 1.0) -> None:
        """Restart nginx whenever it exits on its own; `restarted` then re-pushes the endpoints."""
        delay = backoff
        while True:
            if self.proc is None or self.stopping:
                await asyncio.sleep(0.5)
                continue
            code = await self.proc.wait()
            if self.stopping:
                continue
            log.error("nginx exited with status %s; restarting in %.0fs", code, delay)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the orphaned workers
            await asyncio.sleep(delay)
            try:
                await self.start()
                await restarted()
                delay = backoff
            except (NginxError, OSError) as e:
                log.error("nginx restart failed: %s", e)
                delay = min(delay * 2, 30)

    async def stop(self, timeout: float = 10) -> None:
        """Graceful shutdown (QUIT), then TERM and KILL if it takes too long."""
        self.stopping = True
        if self.proc is None or not self.running:
            return
        for sig in (signal.SIGQUIT, signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
                return
            except TimeoutError:
                continue
