"""``WebSocketProtocol``: the asyncio protocol under a WebSocket, joining the sans-I/O core
(``protocol/websocket.py``) to any stream transport, on either side. Internal: callers get
the public ``aio.websocket.WebSocket`` that wraps it (the client), or the ASGI ``websocket``
scope over it (the server, ``server/websocket.py``).

Rules:
- No task per connection: callers' coroutines await futures that the protocol callbacks
  resolve (a received message, a pong, drained writes, the end of the connection). A
  receiver waiting for a message runs inside the read callback that brought it
  (``_loop.resume.resume_now``). A read that is one small whole message
  (``WebSocketCore.message``) is handed to a waiting receiver as its waiter's result, not
  queued; a receiver cancelled before it ran gives it back (``give_back``).
- One read path: ``buffer_updated`` hands its slice of our buffer to ``data_received``;
  ``WebSocketProtocol.for_transport(tls)`` picks which callback the loop calls
  (``transport.reads.ReadsBothWays``). Reads bigger than ``READ_BUFFER`` (uvloop gives up to
  256 KiB) are taken in slices.
- Bounded both ways. Received messages wait in a queue; above ``max_queue`` bytes the
  transport stops reading until the app catches up. ``send`` waits while the transport's
  write buffer is over ``write_limit``. Automatic answers (pongs, close echoes) written
  while the peer does not read count against ``write_limit`` too: past it we stop reading,
  so a peer that pings without reading cannot grow our memory. Reading goes on while only
  the app's sends wait (they are bounded by waiting): a WebSocket is full duplex, and two
  peers that each stopped reading while their writing is paused would wait on each other
  forever.
- Writes (the write half, ``websocket_writes.py``): a small frame goes straight to the
  transport. While the task that received a read of several messages runs inside that
  read's callback, the frames it sends are held and written in batches of half that many
  (the peer starts on the first half while we answer the rest): two writes per read, not
  one per message; a batch also goes out when the task yields, past ``write_limit``, or
  before any other write. Order is kept. Pipelined, this halves CPU per message.
- Timers, armed only when needed: the keepalive (``ping_interval``: ping; no pong within
  ``ping_timeout``: fail with 1011) and the close timer (``close_timeout`` after the close
  handshake starts, the transport is aborted).
- Tracing (when a tracer is given): UPGRADE, SEND/RECEIVE per message (bytes, opcode), CLOSE
  (code, reason, by).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from .._loop.resume import resume_now
from ..errors import WebSocketClosed, WebSocketHandshakeError
from ..protocol.websocket import (
    CloseReceived,
    HandshakeDone,
    HandshakeFailed,
    Pong,
    WebSocketCore,
    WebSocketOptions,
)
from ..trace.events import Step, Tracer
from ..transport.reads import ReadsBothWays
from .websocket_writes import BACKLOG, EARLY, QUEUE, WebSocketWrites

READ_BUFFER = 64 * 1024
_Future = asyncio.Future
Message = str | bytes

_EARLY_LIMIT = 64 * 1024  # bytes a client may send before the server accepted


class WebSocketProtocol(WebSocketWrites, ReadsBothWays):
    """One WebSocket connection's state and the event loop's callbacks (see the module)."""

    def __init__(self, options: WebSocketOptions, side: Literal["client", "server"], *,
                 core: WebSocketCore | None = None, tracer: Tracer | None = None,
                 conn_id: int = 0) -> None:
        self.loop = asyncio.get_running_loop()
        self.options = options
        self.side = side
        self.core = core
        self.tracer = tracer
        self.conn_id = conn_id
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        #: client: the 101 response's headers (lowercased names)
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.on_lost: Callable[[WebSocketProtocol], None] | None = None
        self.lost = False
        self.write_paused = False
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._buffer = bytearray(READ_BUFFER)
        self._view = memoryview(self._buffer)
        self.messages: deque[Message] = deque()
        self.queued = 0
        self._recv_waiter: asyncio.Future[Message | None] | None = None
        self._takes = False  # the waiter may take a message as its result (message_waiter)
        self.paused = 0  # bit set of reasons reading is paused
        self._backlog = 0  # automatic answers written while the peer did not read
        #: the read size while writing is paused (see get_buffer and _receive_large)
        self._paused_step = max(1024, min(READ_BUFFER, options.write_limit // 2))
        self._drain_waiters: list[asyncio.Future[None]] = []
        #: frames held while a read of several messages is being answered: written in two
        #: halves (the peer starts on the first while we answer the rest), not one each
        self._batch: list[bytes] | None = None
        self._batched = 0
        self._cap = 0  # frames per write while batching
        self._held: bytes | None = None  # read but not yet taken (see _receive_large)
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._close_timer: asyncio.TimerHandle | None = None
        self._ka_timer: asyncio.TimerHandle | None = None
        self._ka_payload: bytes | None = None
        self._ka_deadline = 0.0
        self._ka_next = 0.0
        self._early: bytearray | None = bytearray() if core is None else None
        self._opened: asyncio.Future[None] | None = None  # client: the handshake's end
        self._start_ns = 0

    # ---------------------------------------------------------------- state

    @property
    def open(self) -> bool:
        return self.core is not None and self.core.is_open and not self.lost

    def close_info(self) -> WebSocketClosed | None:
        """How the connection closed; None while that is not known yet."""
        if self.core is None or self.core.is_open:
            return self.closed_error() if self.lost else None
        closed = self.core.closed_error()
        if closed.code == 1006 and not self.lost:
            return None  # closing: the peer's answer may still come
        return closed

    # ---------------------------------------------------------------- receiving

    def recv_nowait(self) -> Message | None:
        """The next message if one is queued, else None (then await ``message_waiter()``)."""
        messages = self.messages
        if not messages:
            return None
        message = messages.popleft()
        self.queued -= len(message)
        if self.paused & QUEUE and self.queued <= self.options.max_queue // 4:
            self.resume_for(QUEUE)
        return message

    def message_waiter(self, take: bool = False) -> asyncio.Future[Message | None]:
        """A future that completes when a message arrives or no more can come; raises
        ``WebSocketClosed`` when none can come any more. Then call ``recv_nowait``.
        ``take``: a message read while nothing is queued may be the future's result
        instead (None: look at the queue); the receiver then calls ``give_back`` if it
        stops (cancelled) while waiting, so that no message is lost."""
        core = self.core
        if self.lost or core is not None and not core.receiving:
            raise self.closed_error()
        other = self._recv_waiter
        if other is not None and not other.done():
            raise RuntimeError("another task is already waiting for a message on this "
                               "WebSocket; receive from one task only")
        # loop= given: without it the future asks for the running loop, which costs a
        # getpid() system call per call on Python 3.11
        waiter: asyncio.Future[Message | None] = _Future(loop=self.loop)
        self._recv_waiter = waiter
        self._takes = take
        return waiter

    def give_back(self, waiter: asyncio.Future[Message | None]) -> None:
        """The receiver of ``waiter`` (``take``) stopped after a message was handed to it
        as its result but before it ran (its wake-up was scheduled, not run inline): the
        message goes back in front of the queue."""
        if not waiter.done() or waiter.cancelled():
            return
        message = waiter.result()
        if message is not None:
            self.messages.appendleft(message)
            self.queued += len(message)
            if self.queued > self.options.max_queue and not self.paused & QUEUE:
                self.pause_for(QUEUE)

    # ---------------------------------------------------------------- for the openers

    def attach(self, transport: asyncio.Transport, early: bytes = b"") -> None:
        """Take over an accepted transport (server handoff): bytes already read are kept
        until ``accept``; reading resumes."""
        self.transport = transport
        transport.set_write_buffer_limits(self.options.write_limit)
        transport.set_protocol(self)
        if early:
            self._early_data(early)
        transport.resume_reading()

    def accept(self, core: WebSocketCore, response: bytes, start_ns: int = 0) -> None:
        """Server: write the 101 ``response`` and start speaking WebSocket with ``core``."""
        self.core = core
        early, self._early = self._early, None
        if self.lost:  # the client left before the app accepted
            core.receive_eof()
            return
        self.transport.write(response)
        if self.paused & EARLY:
            self.resume_for(EARLY)
        if self.tracer is not None:
            self.tracer.record(Step.UPGRADE, "server", start_ns or time.monotonic_ns(),
                               self.conn_id, subprotocol=core.subprotocol,
                               extensions=core.extensions)
        self._start_keepalive()
        if early:
            self.data_received(bytes(early))

    def begin_handshake(self, transport: asyncio.Transport) -> asyncio.Future[None]:
        """Client: write the handshake request on ``transport`` (plain, or TLS on top);
        the future completes when the server switched protocols."""
        assert self.core is not None
        self.transport = transport
        transport.set_write_buffer_limits(self.options.write_limit)
        self._opened = self.loop.create_future()
        self._start_ns = time.monotonic_ns()
        self._flush()
        return self._opened

    # ---------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.write_paused:  # smaller reads: what each makes us answer stays small
            return self._view[:self._paused_step]
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._view[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        core = self.core
        if core is not None and self.tracer is None:
            # The commonest read: one small whole message (see WebSocketCore.message).
            message = core.message(data)
            if message is not None:
                waiter = self._recv_waiter
                if waiter is not None:
                    # The receiving task runs now, inside this callback; when the queue is
                    # empty and it takes, the message is its waiter's result (no queue).
                    self._recv_waiter = None
                    if self._takes and not self.messages and \
                            resume_now(self.loop, waiter, message):
                        return
                self.messages.append(message)
                self.queued += len(message)
                if self.queued > self.options.max_queue and not self.paused & QUEUE:
                    self.pause_for(QUEUE)
                if waiter is not None:
                    resume_now(self.loop, waiter, None)
                return
        if len(data) > READ_BUFFER or self.write_paused and len(data) > self._paused_step:
            self._receive_large(data)
            return
        if core is None:
            self._early_data(data)
            return
        events: list[Any] = core.receive_data(data)
        if not core.simple or self.tracer is not None:
            self._received(events)
        elif events:  # messages only, nothing to answer: queue them, wake the receiver
            self.messages.extend(events)
            self.queued += len(events[0]) if len(events) == 1 else sum(map(len, events))
            if self.queued > self.options.max_queue and not self.paused & QUEUE:
                self.pause_for(QUEUE)
            waiter = self._recv_waiter
            if waiter is not None:
                # The receiving task runs now, inside this callback. When the read held
                # several messages, the frames it sends meanwhile go out in two writes
                # (halves; the rest when it yields), not one system call each.
                self._recv_waiter = None
                if len(events) > 1:
                    self._batch = []
                    self._cap = max(2, (len(events) + 1) // 2)
                resume_now(self.loop, waiter, None)
                if self._batch is not None:
                    self._write_batch()

    def _receive_large(self, data: bytes | memoryview) -> None:
        """A read bigger than our own buffer (uvloop's ``data_received`` path gives up to
        256 KiB): taken in slices (``READ_BUFFER`` bytes; ``write_limit / 2`` once writing
        is paused), so that what it makes us answer on our own (pongs) stays bounded.
        Once those answers are over the limit (the peer does not read), the rest is held,
        reading stays paused, and ``resume_writing`` takes it up first."""
        view = memoryview(data)
        size = len(view)
        at = 0
        while at < size:
            if self.paused & BACKLOG and not self.lost:
                self._held = bytes(view[at:])
                return
            # smaller steps once the peer stopped reading: the check above comes sooner
            step = READ_BUFFER if not self.write_paused else self._paused_step
            self.data_received(view[at:at + step])
            at += step

    def _received(self, events: list[Any]) -> None:
        """After a read that was not only whole messages (or while tracing)."""
        if events:
            self._dispatch(events)
        self._flush(auto=True)

    def eof_received(self) -> bool | None:
        core = self.core
        if core is not None:
            events = core.receive_eof()
            if events:
                self._dispatch(events)
            self._flush(auto=True)
        self._wake_receiver()
        return None  # WebSocket never writes after the peer's EOF: let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        core = self.core
        if core is not None:
            events = core.receive_eof()
            if events:
                self._dispatch(events)
            core.data_to_send()  # nowhere to write it now
        for timer in (self._close_timer, self._ka_timer):
            if timer is not None:
                timer.cancel()
        self._close_timer = self._ka_timer = None
        opened = self._opened
        if opened is not None and not opened.done():
            opened.set_exception(WebSocketHandshakeError(
                "the connection closed during the WebSocket handshake"
                + (f" ({exc})" if exc else "")))
        error = self.closed_error()
        for waiter, _ in self._pings.values():
            if not waiter.done():
                waiter.set_exception(error)
        self._pings.clear()
        self._wake_receiver()
        self._wake_drainers()
        if not self.closed.done():
            self.closed.set_result(None)
        tracer = self.tracer
        if tracer is not None and core is not None:
            detail: dict[str, Any] = {"code": error.code, "reason": error.reason,
                                      "by": error.by}
            if exc is not None:
                detail["error"] = str(exc)
            tracer.record(Step.CLOSE, self.side, time.monotonic_ns(), self.conn_id, **detail)
        if self.on_lost is not None:
            self.on_lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._backlog = 0
        if self.paused & BACKLOG:
            held, self._held = self._held, None
            if held is None:
                self.resume_for(BACKLOG)
            else:  # the bytes held back come first; the transport stays paused meanwhile
                self.paused &= ~BACKLOG
                self._receive_large(held)
                if not self.paused and not self.lost and not self.transport.is_closing():
                    self.transport.resume_reading()
        self._wake_drainers()

    # ---------------------------------------------------------------- internals

    def _dispatch(self, events: list[Any]) -> None:
        messages = self.messages
        tracer = self.tracer
        got = False
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                messages.append(event)
                self.queued += len(event)
                got = True
                if tracer is not None:
                    tracer.record(Step.RECEIVE, self.side, time.monotonic_ns(), self.conn_id,
                                  bytes=len(event.encode() if kind is str else event),
                                  opcode="text" if kind is str else "binary")
            elif kind is Pong:
                self._pong(event.data)
            elif kind is CloseReceived:
                self._wake_receiver()
            elif kind is HandshakeDone:
                self._handshake_done(event)
            elif kind is HandshakeFailed:
                opened = self._opened
                if opened is not None and not opened.done():
                    opened.set_exception(event.error)
        if got:
            self._wake_receiver()
            if self.queued > self.options.max_queue and not self.paused & QUEUE:
                self.pause_for(QUEUE)
        core = self.core
        if core is not None and (self.lost or not core.receiving):  # no more messages
            self._wake_receiver()

    def _handshake_done(self, event: HandshakeDone) -> None:
        self.response_headers = event.headers
        if self.tracer is not None:
            self.tracer.record(Step.UPGRADE, "client", self._start_ns, self.conn_id,
                               status=event.status, subprotocol=event.subprotocol,
                               extensions=event.extensions)
        self._start_keepalive()
        opened = self._opened
        if opened is not None and not opened.done():
            opened.set_result(None)

    def _early_data(self, data: bytes | memoryview) -> None:
        early = self._early
        if early is None:
            return
        early += data
        if len(early) > _EARLY_LIMIT and not self.paused & EARLY:
            self.pause_for(EARLY)

    def _pong(self, data: bytes) -> None:
        if data == self._ka_payload:
            self._ka_payload = None
        pings = self._pings
        if data not in pings:
            return
        now = time.perf_counter()
        # A pong answers its ping and every earlier one (the peer may skip some).
        done = []
        for key, (waiter, sent) in pings.items():
            done.append(key)
            if not waiter.done():
                waiter.set_result(now - sent)
            if key == data:
                break
        for key in done:
            del pings[key]


__all__ = ["READ_BUFFER", "Message", "WebSocketProtocol"]
