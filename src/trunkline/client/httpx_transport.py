"""``HttpxTransport``: httpx on trunkline's client, so httpx reaches every address kind.

    import httpx, trunkline.client
    async with httpx.AsyncClient(transport=trunkline.client.HttpxTransport()) as client:
        await client.get("http+unix://%2Frun%2Fapp.sock/users")
    transport = trunkline.client.HttpxTransport(transport="unix:@api")  # curl --unix-socket
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("http://api.internal/users")   # Host: api.internal, over unix:@api
    with httpx.Client(transport=trunkline.client.HttpxTransport()) as client:   # sync
        client.get("http+unix://%2Frun%2Fapp.sock/users")

Sync use (``httpx.Client``) runs a second trunkline ``Client`` with the same settings on an
event loop of its own, on a daemon thread (``_loop.thread.LoopThread``), started at the
first sync request and stopped by ``close()`` (``httpx.Client`` calls it on exit); each
request and each body chunk waits for that loop. So it works from any thread, including one
running an event loop of its own (blocking it meanwhile, as any sync call does). With
``client=`` given, sync requests use that ``Client`` on the thread's loop: give one that no
async code uses.

URL forms: ``http(s)://``, ``http+unix://%2F…``, ``http+fifo://…`` and ``http://unix:/path:/p``
(httpx reads the last as host ``unix``; this transport puts it back together). httpx lowercases
URL hosts, so an ``http+unix`` socket path with capital letters needs ``transport=`` instead.

Errors are raised as httpx's own exception types (what httpx callers catch), each chained
from the trunkline error that caused it.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from .._loop.thread import LoopThread
from ..errors import (
    AddressError,
    HandshakeError,
    ProtocolError,
    ResolveError,
    TransportError,
    TrunklineError,
    UnsupportedError,
)
from .client import DEFAULT_LIMITS, Client, TransportInput
from .errors import (
    ConnectTimeoutError,
    PoolTimeoutError,
    ReadTimeoutError,
    ServerDisconnectedError,
    WriteTimeoutError,
)
from .models import Limits, Response, Timeout


class HttpxTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """An httpx transport, async (``httpx.AsyncClient``) and sync (``httpx.Client``), that
    sends every request through a trunkline ``Client`` (its pools, transports, TLS settings
    and tracer). ``http+svc://NAME/path`` URLs go to the service's best address
    (``registry``: a registry URL, or for the async side a ``trunkline.Resolver``;
    ``prefer``: as for ``Client``)."""

    def __init__(self, *, transport: TransportInput = None, verify: Any = True,
                 cert: str | tuple[str, str] | None = None, limits: Limits = DEFAULT_LIMITS,
                 retries: int = 1, tracer: Any = None, client: Client | None = None,
                 registry: Any = None, prefer: str | None = None) -> None:
        self._settings: dict[str, Any] = dict(
            transport=transport, verify=verify, cert=cert, limits=limits, retries=retries,
            tracer=tracer, user_agent=None, registry=registry, prefer=prefer)
        self.client = client or Client(**self._settings)
        self._given = client
        self._sync: tuple[LoopThread, Client] | None = None
        self._sync_lock = threading.Lock()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = _trunkline_url(request.url)
        timeout = _timeout(request.extensions.get("timeout"))
        stream = request.stream
        # a fixed body is replayable, so an idempotent request can be retried
        content: Any = (b"".join(stream) if isinstance(stream, httpx.ByteStream)
                        else _async_body(stream))  # type: ignore[arg-type]
        try:
            response = await self.client.request(
                request.method, url, headers=request.headers.raw, content=content,
                timeout=timeout, stream=True)
        except TrunklineError as exc:
            raise _httpx_error(exc, request) from exc
        return httpx.Response(
            response.status_code, headers=response.raw_headers,
            stream=_ResponseStream(response, request),
            extensions={"http_version": b"HTTP/" + response.http_version.encode(),
                        "reason_phrase": response.reason_bytes})

    async def aclose(self) -> None:
        await self.client.aclose()

    # ------------------------------------------------------------------ sync (httpx.Client)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        thread, client = self._sync_side()
        url = _trunkline_url(request.url)
        timeout = _timeout(request.extensions.get("timeout"))
        stream = request.stream
        # a fixed body is replayable; any other is read block by block on the loop's thread
        content: Any = (b"".join(stream) if isinstance(stream, httpx.ByteStream)
                        else iter(stream))  # type: ignore[arg-type]
        try:
            response = thread.run(client.request(
                request.method, url, headers=request.headers.raw, content=content,
                timeout=timeout, stream=True))
        except TrunklineError as exc:
            raise _httpx_error(exc, request) from exc
        return httpx.Response(
            response.status_code, headers=response.raw_headers,
            stream=_SyncResponseStream(response, request, thread),
            extensions={"http_version": b"HTTP/" + response.http_version.encode(),
                        "reason_phrase": response.reason_bytes})

    def close(self) -> None:
        """Close the sync side: its connections, then its loop and thread."""
        with self._sync_lock:
            sync, self._sync = self._sync, None
        if sync is not None:
            thread, client = sync
            try:
                thread.run(client.aclose())
            finally:
                thread.stop()

    def _sync_side(self) -> tuple[LoopThread, Client]:
        with self._sync_lock:
            if self._sync is None:
                client = self._given or Client(**self._settings)
                self._sync = (LoopThread("trunkline-httpx"), client)
            return self._sync


class _SyncResponseStream(httpx.SyncByteStream):
    """A streamed response read from the sync side: each chunk fetched on its loop."""

    def __init__(self, response: Response, request: httpx.Request, thread: LoopThread) -> None:
        self._response = response
        self._request = request
        self._thread = thread

    def __iter__(self) -> Iterator[bytes]:
        chunks = self._response.aiter_bytes()
        while True:
            try:
                chunk = self._thread.run(_next(chunks))
            except TrunklineError as exc:
                raise _httpx_error(exc, self._request) from exc
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        self._thread.run(self._response.aclose())


async def _next(chunks: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return None


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: Response, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                yield chunk
        except TrunklineError as exc:
            raise _httpx_error(exc, self._request) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


async def _async_body(stream: httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield chunk


def _trunkline_url(url: httpx.URL) -> str:
    path = url.raw_path.decode("ascii")
    if url.host == "unix" and url.port is None and ":" in path:
        # http://unix:/run/app.sock:/p arrives as host "unix", path "/run/app.sock:/p"
        return f"{url.scheme}://unix:{path}"
    netloc = url.netloc.decode("ascii")
    return f"{url.scheme}://{netloc}{path}"


def _timeout(value: Any) -> Timeout | None:
    if not isinstance(value, dict):
        return None
    return Timeout(connect=value.get("connect"), read=value.get("read"),
                   write=value.get("write"), pool=value.get("pool"), total=None)


def _httpx_error(exc: TrunklineError, request: httpx.Request) -> httpx.HTTPError:
    message = str(exc)
    table: list[tuple[type[BaseException], type[httpx.TransportError]]] = [
        (ConnectTimeoutError, httpx.ConnectTimeout),
        (ReadTimeoutError, httpx.ReadTimeout),
        (WriteTimeoutError, httpx.WriteTimeout),
        (PoolTimeoutError, httpx.PoolTimeout),
        (ServerDisconnectedError, httpx.RemoteProtocolError),
        (ProtocolError, httpx.RemoteProtocolError),
        (ResolveError, httpx.ConnectError),
        (HandshakeError, httpx.ConnectError),
        (AddressError, httpx.UnsupportedProtocol),
        (UnsupportedError, httpx.UnsupportedProtocol),
        (TransportError, httpx.ConnectError),
    ]
    for ours, theirs in table:
        if isinstance(exc, ours):
            if theirs is httpx.ConnectError and isinstance(exc, TransportError) and not (
                    isinstance(exc, HandshakeError) or "connect" in message):
                return httpx.ReadError(message, request=request)
            return theirs(message, request=request)
    return httpx.TransportError(message, request=request)


__all__ = ["HttpxTransport"]
