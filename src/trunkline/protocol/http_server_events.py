"""What the HTTP/1.1 server core (``http_server.py``) is given and what it returns.

``HttpLimits`` bounds one request; ``receive_data`` returns a list of events, in wire order:
``RequestHead``; ``bytes`` (a piece of request body: the bytes object *is* the event);
``END_OF_MESSAGE``; ``Reject`` (answer its status and close); ``Upgraded`` (the bytes after
an Upgrade or CONNECT request's head).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class HttpLimits:
    """What one request may be. ``None`` means no limit (only for the body)."""

    max_request_line: int = 8 * 1024  # bytes before the first CRLF (414)
    max_header_bytes: int = 16 * 1024  # field lines after the request line (431)
    max_header_count: int = 100  # field lines (431)
    max_body_bytes: int | None = 1024 * 1024  # decoded body (413)
    max_chunk_line: int = 4 * 1024  # chunk size plus extensions (400)


class RequestHead:
    """A parsed request head. Header names are lowercased, values as sent.

    Made by the core as ``RequestHead()`` and its per-request attributes stored one
    by one: an ``__init__`` with arguments would be a C-to-Python call inside the type call
    (~1.4k instructions per request in CPython 3.11)."""

    method: str
    target: bytes
    path: str
    raw_path: bytes
    query: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    # What most requests share lives on the class.
    expect_continue = False
    upgrade: bytes | None = None  # lowercased Upgrade token (b"websocket"), b"connect", or None
    content_length: int | None = None
    chunked = False
    trace_id: str | None = None  # the x-trunkline-trace-id header, for client/server traces
    #: the request's ASGI scope, when the core was given a ``scope_template``: the
    #: template's copy with this head's keys filled in (the rest is the I/O layer's)
    scope: dict[str, Any] | None = None

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<RequestHead {self.method} {self.target!r} HTTP/{self.http_version}>"


class EndOfMessage:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_MESSAGE"


END_OF_MESSAGE: Final = EndOfMessage()


@dataclass(frozen=True, slots=True)
class Reject:
    """The request is malformed or over a limit: answer ``status`` and close."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Upgraded:
    """Bytes that follow an Upgrade/CONNECT request's head: no longer HTTP/1.1."""

    data: bytes


Event = RequestHead | bytes | EndOfMessage | Reject | Upgraded


__all__ = ["END_OF_MESSAGE", "EndOfMessage", "Event", "HttpLimits", "Reject", "RequestHead",
           "Upgraded"]
