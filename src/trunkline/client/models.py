"""Values of the HTTP client: ``Timeout``, ``Limits``, ``Headers`` and ``Response``.

A ``Response`` is filled in by the connection that carries it (``connection.py``): the head
when it arrives, the body as chunks. A buffered response is complete when the client returns
it; a streamed one (``Client.stream``) is read with ``aiter_bytes``/``aread`` and must be
closed (``async with``), which frees its connection.
"""

from __future__ import annotations

import asyncio
import json as _json
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import TrunklineError
from .errors import HTTPStatusError

if TYPE_CHECKING:
    from .connection import HttpClientConnection

#: Above this many unread streamed bytes the connection stops reading from the socket.
STREAM_HIGH_WATER = 1024 * 1024


@dataclass(frozen=True)
class Timeout:
    """Seconds; ``None`` waits forever. ``read`` is the longest silence while waiting for
    response bytes, ``write`` the longest stall sending the body, ``pool`` the wait for a free
    pooled connection, ``total`` bounds the whole call (connect and pool wait included)."""

    connect: float | None = 10.0
    read: float | None = 30.0
    write: float | None = 30.0
    pool: float | None = 30.0
    total: float | None = None

    @classmethod
    def of(cls, value: Timeout | float | None) -> Timeout:
        """A number means every phase (and the total) gets that many seconds."""
        if isinstance(value, Timeout):
            return value
        return cls(value, value, value, value, value)


@dataclass(frozen=True)
class Limits:
    """Per resolved address: at most ``max_connections`` open at once (more requests wait),
    at most ``max_keepalive`` idle ones kept, each for ``keepalive_expiry`` seconds."""

    max_connections: int = 100
    max_keepalive: int = 100
    keepalive_expiry: float = 4.0  # under the 5 s idle timeout of uvicorn and httpx


class Headers:
    """Response headers in wire order; lookups ignore case. Values are latin-1 text."""

    __slots__ = ("raw", "_index")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw
        self._index: dict[str, str] | None = None

    def _lookup(self) -> dict[str, str]:
        if self._index is None:
            index: dict[str, str] = {}
            for name, value in self.raw:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                index[key] = f"{index[key]}, {text}" if key in index else text
            self._index = index
        return self._index

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._lookup().get(name.lower(), default)

    def get_list(self, name: str) -> list[str]:
        """Every value of a header, one per line it came on (Set-Cookie, say)."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for n, v in self.raw if n.lower() == key]

    def __getitem__(self, name: str) -> str:
        return self._lookup()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __len__(self) -> int:
        return len(self._lookup())

    def items(self) -> list[tuple[str, str]]:
        return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self.raw]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


class Response:
    """One HTTP response. ``content``/``text``/``json()`` need the body read (always so for
    ``Client.request``; after ``await response.aread()`` for ``Client.stream``)."""

    __slots__ = ("method", "url", "request_head", "status_code", "reason_bytes", "http_version",
                 "raw_headers", "_headers", "_content", "_chunks", "_buffered", "_complete",
                 "_error", "_waiter", "_conn", "_closed", "num_bytes", "trace_id")

    def __init__(self, method: str, url: str, request_head: bytes) -> None:
        self.method = method
        self.url = url
        self.request_head = request_head  # the exact bytes of the request head sent
        self.status_code = 0
        self.reason_bytes = b""
        self.http_version = "1.1"
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: Headers | None = None
        self._content: bytes | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._conn: HttpClientConnection | None = None  # set while a streamed body is being read
        self._closed = False
        self.num_bytes = 0  # body bytes received
        self.trace_id: str | None = None

    # ---- head

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self.raw_headers)
        return self._headers

    @property
    def reason_phrase(self) -> str:
        return self.reason_bytes.decode("latin-1")

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    @property
    def head_bytes(self) -> bytes:
        """The response head as received: status line and header lines (reassembled from the
        parsed pieces, so whitespace around values is normalised)."""
        lines = [b"HTTP/%s %d %s\r\n" % (self.http_version.encode(), self.status_code,
                                           self.reason_bytes)]
        lines += [b"%s: %s\r\n" % pair for pair in self.raw_headers]
        lines.append(b"\r\n")
        return b"".join(lines)

    def raise_for_status(self) -> Response:
        if self.status_code >= 400:
            kind = "client error" if self.status_code < 500 else "server error"
            raise HTTPStatusError(f"{self.status_code} {self.reason_phrase} ({kind}) for "
                                  f"{self.method} {self.url}", self)
        return self

    # ---- body

    @property
    def content(self) -> bytes:
        if self._content is None:
            if not self._complete:
                raise TrunklineError("the body of a streamed response is not read yet; "
                                     "await response.aread() first")
            self._content = b"".join(self._chunks)
            self._chunks.clear()
        return self._content

    @property
    def encoding(self) -> str:
        ctype = self.headers.get("content-type", "") or ""
        for part in ctype.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"')
        return "utf-8"

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding, "replace")

    def json(self, **kwargs: Any) -> Any:
        return _json.loads(self.content, **kwargs)

    async def aread(self) -> bytes:
        """Read the rest of a streamed body and return the whole of it."""
        if self._content is None:
            parts = [chunk async for chunk in self.aiter_bytes()]
            self._content = b"".join(parts)
        return self._content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives, chunk by chunk (all at once if already read)."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        chunks = self._chunks
        while True:
            if chunks:
                chunk = chunks.popleft()
                self._buffered -= len(chunk)
                conn = self._conn
                if conn is not None and self._buffered < STREAM_HIGH_WATER:
                    conn.resume_body()
                yield chunk
                continue
            if self._error is not None:
                raise self._error
            if self._complete:
                return
            if self._closed:
                raise TrunklineError("the response was closed before its body was read")
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter

    async def aclose(self) -> None:
        """Free the connection: kept for reuse if the body was read to the end, else closed."""
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None and not self._complete:
            conn.abandon()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- used by the connection

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code} {self.reason_phrase}] {self.method} {self.url}>"
