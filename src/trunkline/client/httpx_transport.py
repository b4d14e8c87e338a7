"""``HttpxTransport``: httpx on trunkline's client, so httpx reaches every address kind.

    import httpx, trunkline.client
    async with httpx.AsyncClient(transport=trunkline.client.HttpxTransport()) as client:
        await client.get("http+unix://%2Frun%2Fapp.sock/users")
    transport = trunkline.client.HttpxTransport(transport="unix:@api")  # curl --unix-socket
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("http://api.internal/users")   # Host: api.internal, over unix:@api

URL forms: ``http(s)://``, ``http+unix://%2F…``, ``http+fifo://…`` and ``http://unix:/path:/p``
(httpx reads the last as host ``unix``; this transport puts it back together). httpx lowercases
URL hosts, so an ``http+unix`` socket path with capital letters needs ``transport=`` instead.

Errors are raised as httpx's own exception types (what httpx callers catch), each chained
from the trunkline error that caused it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

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


class HttpxTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` that sends every request through a trunkline
    ``Client`` (its pools, transports, TLS settings and tracer). ``http+svc://NAME/path``
    URLs go to the service's best address (``registry``, ``prefer``: as for ``Client``)."""

    def __init__(self, *, transport: TransportInput = None, verify: Any = True,
                 cert: str | tuple[str, str] | None = None, limits: Limits = DEFAULT_LIMITS,
                 retries: int = 1, tracer: Any = None, client: Client | None = None,
                 registry: Any = None, prefer: str | None = None) -> None:
        self.client = client or Client(transport=transport, verify=verify, cert=cert,
                                       limits=limits, retries=retries, tracer=tracer,
                                       user_agent=None, registry=registry, prefer=prefer)

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
