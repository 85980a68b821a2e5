"""knet's API client: aiohttp requests with a component's credentials, for the informers and the few
writes the components make (Events, status, their own objects).

Why not the kubernetes client: its synchronous calls need a thread each, and importing it (with the
models Kopf then also loads) costs each process about 18 MiB, for the handful of paths knet calls.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import ssl
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import aiohttp

log = logging.getLogger(__name__)

WATCH_TIMEOUT = 300  # seconds the API server keeps one watch open; the client gives it 30 more
REQUEST_TIMEOUT = 10.0  # seconds for one read or write
BACKOFFS = (1.0, 2.0, 5.0)  # then 10 s forever
MERGE_PATCH = "application/merge-patch+json"


def api_path(api: str, plural: str, namespace: str = "", name: str = "", subresource: str = "") -> str:
    """The path of a collection or an object: `api` is "v1" or "group/version"."""
    path = f"/api/{api}" if "/" not in api else f"/apis/{api}"
    path += f"/namespaces/{namespace}" if namespace else ""
    path += f"/{plural}" + (f"/{name}" if name else "")
    return path + (f"/{subresource}" if subresource else "")


class Connection(Protocol):
    """Where the API server is and how to prove who we are (`operators.runtime.login.Credentials`)."""

    server: str

    def headers(self) -> dict[str, str]: ...  # read at each request: a token file is rotated

    def ssl_context(self) -> ssl.SSLContext: ...


class Gone(Exception):
    """The resourceVersion is too old (410): only a new listing can continue."""


class ApiError(Exception):
    """The API server answered a request with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"({status}) {message}")
        self.status = status
        self.message = message


class Client:
    """One aiohttp session to the API server, opened at the first request."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.connection.ssl_context()))
        return self.session

    async def get(self, path: str, params: Mapping[str, str], timeout: float) -> aiohttp.ClientResponse:
        """A streamed GET (lists and watches): `timeout` bounds each read, not the whole response."""
        response = await self._session().get(self.connection.server + path, params=params,
                                             headers=self.connection.headers(),
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=10,
                                                                           sock_read=timeout))
        if response.status == 410:
            response.release()
            raise Gone(path)
        if response.status >= 400:
            text = await response.text()
            response.release()
            raise aiohttp.ClientResponseError(response.request_info, (), status=response.status,
                                              message=status_message(text))
        return response

    async def request(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                      content_type: str = "application/json", timeout: float = REQUEST_TIMEOUT) -> Any:
        """One request with a JSON body; the JSON answer. Raises `ApiError` for an error status, and
        aiohttp's or the OS's errors (and TimeoutError) when the API server cannot be reached."""
        headers = {**self.connection.headers(), "Content-Type": content_type}
        async with self._session().request(method, self.connection.server + path, headers=headers,
                                           data=None if body is None else json.dumps(body),
                                           timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            text = await response.text()
            if response.status >= 400:
                raise ApiError(response.status, status_message(text))
            return json.loads(text) if text else None

    async def read(self, path: str, what: str) -> dict[str, Any] | None:
        """One object, None if there is none (404, also when its CRD is missing); retried until the API
        server answers either way."""
        backoff = delays()
        while True:
            try:
                return dict(await self.request("GET", path))
            except ApiError as e:
                if e.status == 404:
                    return None
                log.warning("reading %s: %s; retrying", what, e)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
                log.warning("reading %s: %s; retrying", what, e or type(e).__name__)
            await asyncio.sleep(next(backoff))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def status_message(text: str) -> str:
    """The message of the API server's Status body (as kubectl prints it), else the start of the text."""
    try:
        body = json.loads(text)
    except ValueError:
        return text[:300]
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:1000] if message else text[:300]


def delays() -> Iterator[float]:
    """Seconds to wait before each retry of a failing request: BACKOFFS, then 10 s forever."""
    return itertools.chain(BACKOFFS, itertools.repeat(10.0))
