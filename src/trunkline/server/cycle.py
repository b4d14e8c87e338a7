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
- ``start`` is the app call: an app that raises, or returns without completing its response,
  gets a 500 (or a close when part of the answer went out) and a line on
  ``trunkline.server``; one cancelled by a stop's deadline is logged as such.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import TYPE_CHECKING, Any

from .._loop.eager import PENDING, EagerRunner, adopt
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
_ERROR_BODY = b"Internal Server Error"
_ERROR_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"),
                  (b"content-length", b"%d" % len(_ERROR_BODY))]

log = logging.getLogger("trunkline.server")


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

    # No __init__: made as ``Cycle()`` and its attributes stored by its one maker,
    # ``HttpServerConnection._on_head`` (a type call with arguments would run __init__ as a
    # C-to-Python call, ~1k instructions more per request in CPython 3.11).
    conn: HttpServerConnection
    head: RequestHead
    scope: Scope
    body: list[bytes]
    expect: bool

    def start(self, runner: EagerRunner) -> None:
        """The app call for this request (its connection starts it): stepped at once by
        ``runner``, with no coroutine of ours around it; one that waits goes on in
        ``resume``, which answers its outcome the same way."""
        conn = self.conn
        if conn.tracer is not None:
            self.app_ns = time.monotonic_ns()
        try:
            result = runner.call(conn.app(self.scope, self.receive, self.send), self)
        except BaseException as exc:  # noqa: BLE001 - the app's failure is logged, then answered
            self.raised(exc, runner)
        else:
            if result is PENDING:
                return  # (resume traces it)
            if result is not None or not (self.done or self.disconnected):
                self.returned(result)
        if conn.tracer is not None:
            conn.trace_app_call(self)

    def raised(self, exc: BaseException, runner: EagerRunner) -> None:
        """The app call raised ``exc`` at once (``start``; the connection's inline copy)."""
        if isinstance(exc, asyncio.CancelledError | Exception):
            self._raised(exc)  # (a cancel stops here: what a task ends with)
        else:
            runner.failed(exc)  # KeyboardInterrupt, SystemExit: as from a task

    async def resume(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        """The app call from where ``start`` left it, in a task."""
        try:
            result: object = await adopt(coro, yielded)
        except BaseException as exc:  # noqa: BLE001 - the app's failure is logged, then answered
            if not isinstance(exc, asyncio.CancelledError | Exception):
                raise
            self._raised(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            if result is not None or not (self.done or self.disconnected):
                self.returned(result)
        finally:
            if self.conn.tracer is not None:
                self.conn.trace_app_call(self)

    def _raised(self, exc: BaseException) -> None:
        """The app raised ``exc`` (an Exception or a cancel): log it, answer 500."""
        self.conn.state.access.flush()  # the lines of earlier requests come first
        target = self.head.target.decode("latin-1")
        if isinstance(exc, asyncio.CancelledError):
            log.warning("ASGI app cancelled (shutdown deadline) during %s %s",
                        self.head.method, target)
        elif not self.disconnected:
            log.error("Exception in ASGI application (%s %s)", self.head.method, target,
                      exc_info=exc)
        self.failed()

    def returned(self, result: object) -> None:
        """The app returned ``result`` without completing its response, or not None."""
        self.conn.state.access.flush()
        if result is not None:
            log.error("ASGI app returned %r instead of None", result)
        if not self.done and not self.disconnected:
            log.error("ASGI app returned without %s the response (%s %s)",
                      "completing" if self.started else "starting", self.head.method,
                      self.head.target.decode("latin-1"))
            self.failed()

    def failed(self) -> None:
        """The app failed: answer 500, or close if part of an answer went out."""
        if self.done or self.disconnected:
            return
        conn = self.conn
        if self.on_wire:  # part of a response went out: the client can only see a close
            self.done = True
            conn.close()
            return
        self.started = True
        self.status = 500
        conn.core.start_response(self.head, 500, _ERROR_HEADERS)
        conn.write(conn.core.send_body(_ERROR_BODY, False))
        self.on_wire = True
        self.body_bytes = len(_ERROR_BODY)
        self.done = True
        self.wake()
        conn.response_done(self)

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
        if kind == "http.response.body":
            if not self.started or self.done:
                raise RuntimeError("ASGI app sent 'http.response.body' " + (
                    "after the response was complete" if self.started else
                    "before 'http.response.start'"))
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self.disconnected:
                if not more:
                    self.done = True
                return
            conn = self.conn
            out = conn.core.send_body(body, more)
            self.body_bytes += len(body)
            if out:
                if not self.on_wire:
                    self.on_wire = True
                    if conn.tracer is not None:
                        conn.trace_response_start(self)
                conn.write(out)
            if not more:
                self.done = True
                if self.waiter is not None:
                    self.wake()
                conn.response_done(self)
            if conn.write_paused:  # the last piece too: the app waits while the client lags
                await conn.drain()
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("ASGI app sent 'http.response.start' twice")
            self.started = True
            self.expect = False
            status = self.status = message["status"]
            if not self.disconnected:
                self.conn.core.start_response(self.head, status, message.get("headers", ()))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an HTTP connection")


__all__ = ["ASGIApp", "Cycle", "Message", "Receive", "Scope", "Send"]
