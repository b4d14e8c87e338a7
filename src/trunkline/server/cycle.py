"""One request/response exchange as the ASGI app sees it: ``receive`` and ``send``.

Rules:
- ``receive`` hands out the body as it arrives (``more_body`` until the end), sends
  ``100 Continue`` on the first call when the client asked for it, and after the last piece
  waits until the response is done or the client is gone, then says ``http.disconnect``.
- ``send`` turns ``http.response.start`` and ``http.response.body`` into wire bytes through
  the connection's sans-I/O core. The head waits for the first body message, so a response
  sent in one piece goes out in one write with its Content-Length. Every body message,
  the last one included, returns once the transport's write buffer is under its
  high-water mark (the app waits while the client does not read).
- Sends after the client is gone are dropped (the app learns through ``receive``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from ..protocol.http_server_events import RequestHead
from ..protocol.http_server_response import CONTINUE

if TYPE_CHECKING:
    from .http import HttpServerConnection

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DISCONNECT = "http.disconnect"


class Cycle:
    # Class-level defaults: a new cycle sets only what differs per request (cheaper than
    # eighteen slot stores on every request).
    buffered = 0  # body bytes held here, counted against the connection's buffer
    complete = False  # the whole request body has arrived
    final_given = False  # receive() has returned more_body=False
    waiter: asyncio.Future[None] | None = None
    started = False  # http.response.start seen
    on_wire = False  # some response bytes were written
    done = False  # the response is complete
    disconnected = False
    status = 0
    body_bytes = 0
    start_ns = 0
    app_ns = 0
    wire_ns = 0  # traced: when the response's first bytes were written
    rest = b""  # bytes after an Upgrade request's head
    task: asyncio.Task[None] | None = None  # the app call (HttpServerConnection._run)

    def __init__(self, conn: HttpServerConnection, head: RequestHead, scope: Scope) -> None:
        self.conn = conn
        self.head = head
        self.scope = scope
        self.body: list[bytes] = []
        self.expect = head.expect_continue

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def receive(self) -> Message:
        if self.expect:
            self.expect = False
            if not self.started and not self.complete and not self.disconnected:
                self.conn.write(CONTINUE)
                self.conn.body_wanted(self)
        while True:
            if self.disconnected or self.done:
                return {"type": _DISCONNECT}
            if not self.final_given and (self.body or self.complete):
                chunks = self.body
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self.body = []
                if self.buffered:
                    self.conn.consumed(self.buffered)
                    self.buffered = 0
                if self.complete:
                    self.final_given = True
                return {"type": "http.request", "body": data, "more_body": not self.complete}
            waiter = self.waiter = self.conn.loop.create_future()
            await waiter

    async def send(self, message: Message) -> None:
        kind = message["type"]
        conn = self.conn
        if kind == "http.response.body":
            if not self.started:
                raise RuntimeError("ASGI app sent 'http.response.body' before "
                                   "'http.response.start'")
            if self.done:
                raise RuntimeError("ASGI app sent 'http.response.body' after the response "
                                   "was complete")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self.disconnected:
                if not more:
                    self.done = True
                return
            out = conn.core.send_body(body, more)
            self.body_bytes += len(body)
            if out:
                if not self.on_wire:
                    self.on_wire = True
                    if conn.tracer is not None:
                        conn.trace_response_start(self)
                if not conn.lost:
                    conn.transport.write(out)
            if not more:
                self.done = True
                self.wake()
                conn.response_done(self)
            if conn.write_paused:  # the last piece too: the app waits while the client lags
                await conn.drain()
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("ASGI app sent 'http.response.start' twice")
            self.started = True
            self.expect = False
            status = message["status"]
            self.status = status
            if self.disconnected:
                return
            conn.core.start_response(self.head, status, message.get("headers", ()))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an HTTP connection")


__all__ = ["ASGIApp", "Cycle", "Message", "Receive", "Scope", "Send"]
