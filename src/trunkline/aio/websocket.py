"""``WebSocket``: the asyncio protocol that joins the sans-I/O WebSocket core to any stream
transport, on either side. The client (``trunkline.websocket``) hands it to the caller;
the server wraps it in the ASGI ``websocket`` scope.

Rules:
- No task per connection: callers' coroutines await futures that the protocol callbacks
  resolve (a received message, a pong, drained writes, the end of the connection).
- Bounded both ways. Received messages wait in a queue; above ``max_queue`` bytes the
  transport stops reading until the app catches up. ``send`` waits while the transport's
  write buffer is over ``write_limit``. Automatic answers (pongs, close echoes) written
  while the peer does not read count against ``write_limit`` too: past it we stop reading,
  so a peer that pings without reading cannot grow our memory. Reading goes on while only
  the app's sends wait (they are bounded by waiting): a WebSocket is full duplex, and two
  peers that each stopped reading while their writing is paused would wait on each other
  forever (a sender and a reader task on each side, both sending more than the buffers
  hold).
- Writes: a small frame goes straight to the transport. While the task that received a
  read of several messages runs inside that read's callback, the frames it sends are held
  and written in batches of half that many (the peer starts on the first half while we
  answer the rest; all of it in one write would leave it idle), the rest when the task
  yields, past ``write_limit``, or before any other write. Order is kept. Pipelined, this
  halves CPU per message; one message per read (ping-pong) is unaffected.
- Timers, armed only when needed: the keepalive (``ping_interval``: ping; no pong within
  ``ping_timeout``: fail with 1011) and the close timer (``close_timeout`` after the close
  handshake starts, the transport is aborted).
- ``recv`` raises ``WebSocketClosed`` once the peer's close frame (or a failure) ends the
  stream of messages and every queued message was taken; ``async for`` stops quietly on a
  normal close (1000, 1001) and raises otherwise.
- Tracing (when a tracer is given): UPGRADE, SEND/RECEIVE per message (bytes, opcode), CLOSE
  (code, reason, by).
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from .._loop.resume import resume_failed, resume_now
from ..address import Identity
from ..errors import WebSocketClosed, WebSocketHandshakeError
from ..protocol.websocket import (
    SEND_EOF,
    CloseReceived,
    HandshakeDone,
    HandshakeFailed,
    Pong,
    WebSocketCore,
    WebSocketOptions,
)
from ..trace.events import Step, Tracer
from ..transport.base import local_identity, peer_identity

READ_BUFFER = 64 * 1024
_Future = asyncio.Future
Message = str | bytes

_QUEUE, _BACKLOG, _EARLY = 1, 2, 4  # reasons to stop reading
_EARLY_LIMIT = 64 * 1024  # bytes a client may send before the server accepted


class WebSocket(asyncio.BufferedProtocol):
    """One WebSocket connection: ``send``, ``recv``, ``async for``, ``ping``, ``close``."""

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
        self.on_lost: Callable[[WebSocket], None] | None = None
        self.lost = False
        self._buffer = bytearray(READ_BUFFER)
        self._view = memoryview(self._buffer)
        self._messages: deque[Message] = deque()
        self._queued = 0
        self._recv_waiter: asyncio.Future[None] | None = None
        self._paused = 0  # bit set of reasons reading is paused
        self._write_paused = False
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
        self._closed: asyncio.Future[None] = self.loop.create_future()
        self._close_timer: asyncio.TimerHandle | None = None
        self._ka_timer: asyncio.TimerHandle | None = None
        self._ka_payload: bytes | None = None
        self._ka_deadline = 0.0
        self._ka_next = 0.0
        self._early: bytearray | None = bytearray() if core is None else None
        self._opened: asyncio.Future[None] | None = None  # client: the handshake's end
        self._start_ns = 0

    # ---------------------------------------------------------------- public API

    @property
    def subprotocol(self) -> str | None:
        return self.core.subprotocol if self.core is not None else None

    @property
    def extensions(self) -> list[str]:
        return self.core.extensions if self.core is not None else []

    @property
    def open(self) -> bool:
        return self.core is not None and self.core.is_open and not self.lost

    @property
    def close_code(self) -> int | None:
        """The close code: the peer's close frame's, or ours when we failed the connection,
        or 1006 when the connection dropped without one. None while it is not known yet."""
        closed = self._close_info()
        return None if closed is None else closed.code

    @property
    def close_reason(self) -> str | None:
        closed = self._close_info()
        return None if closed is None else closed.reason

    def _close_info(self) -> WebSocketClosed | None:
        if self.core is None or self.core.is_open:
            return self._closed_error() if self.lost else None
        closed = self.core.closed_error()
        if closed.code == 1006 and not self.lost:
            return None  # closing: the peer's answer may still come
        return closed

    @property
    def closed_by(self) -> str | None:
        """"client" or "server": the side that started the close; None if nobody did."""
        return None if self.core is None else self.core.closed_by

    @property
    def local(self) -> Identity | None:
        try:
            return local_identity(self.transport)
        except (OSError, ValueError, AttributeError):
            return None

    @property
    def peer(self) -> Identity | None:
        return peer_identity(self.transport) if self.transport is not None else None

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send one text (``str``) or binary message; waits while the peer is not reading."""
        core = self.core
        tracer = self.tracer
        if tracer is None and core is not None and not self.lost and (
                type(message) is bytes or type(message) is str):
            # the common case: one small frame, straight to the transport (None: not open,
            # or not simple; the general path below decides)
            frame = core.frame(message)
            if frame is not None:
                batch = self._batch
                if batch is not None:  # answering a read of several messages: see _batch
                    batch.append(frame)
                    self._batched += len(frame)
                    if self._batched <= self.options.write_limit and len(batch) < self._cap:
                        return
                    self._write_batch()
                else:
                    transport = self.transport
                    if not transport.is_closing():
                        transport.write(frame)
                if self._write_paused:
                    await self._drain()
                return
        if core is None or not core.is_open or self.lost:
            raise self._closed_error()
        start = time.monotonic_ns() if tracer is not None else 0
        if type(message) is str:
            core.send_text(message)
        elif isinstance(message, bytes | bytearray | memoryview):
            core.send_binary(message)
        else:
            raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
        self._flush()
        if tracer is not None:
            text = type(message) is str
            tracer.record(Step.SEND, self.side, start, self.conn_id,
                          bytes=len(message.encode() if text else message),  # type: ignore[union-attr]
                          opcode="text" if text else "binary")
        if self._write_paused:
            await self._drain()

    async def recv(self) -> Message:
        """The next message: ``str`` for text, ``bytes`` for binary."""
        messages = self._messages
        while not messages:
            core = self.core  # _can_receive(), inlined
            if self.lost or core is not None and not core.receiving:
                raise self._closed_error()
            other = self._recv_waiter
            if other is not None and not other.done():
                raise RuntimeError("another task is already waiting in recv() on this "
                                   "WebSocket; receive from one task only")
            waiter = self._recv_waiter = _Future()
            try:
                await waiter
            finally:
                self._recv_waiter = None
        message = messages.popleft()
        self._queued -= len(message)
        if self._paused & _QUEUE and self._queued <= self.options.max_queue // 4:
            self._resume(_QUEUE)
        return message

    # For a layer on top (the ASGI server) that would otherwise await recv() and send() in
    # its own coroutines: the same steps without the extra coroutine per message.

    def recv_nowait(self) -> Message | None:
        """The next message if one is queued, else None (then await ``message_waiter()``)."""
        messages = self._messages
        if not messages:
            return None
        message = messages.popleft()
        self._queued -= len(message)
        if self._paused & _QUEUE and self._queued <= self.options.max_queue // 4:
            self._resume(_QUEUE)
        return message

    def message_waiter(self) -> asyncio.Future[None]:
        """A future that completes when a message arrives or no more can come; raises
        ``WebSocketClosed`` when none can come any more. Then call ``recv_nowait``."""
        core = self.core
        if self.lost or core is not None and not core.receiving:
            raise self._closed_error()
        other = self._recv_waiter
        if other is not None and not other.done():
            raise RuntimeError("another task is already waiting for a message on this "
                               "WebSocket; receive from one task only")
        waiter: asyncio.Future[None] = _Future()
        self._recv_waiter = waiter
        return waiter

    def try_send(self, message: str | bytes) -> bool:
        """Write ``message`` at once when nothing needs waiting for (open, one small text or
        binary frame, no tracer, the transport under its limit): True. Else False: then
        ``await send(message)``, which waits or raises as it must."""
        core = self.core
        if self._write_paused or self.tracer is not None or self.lost or core is None or (
                type(message) is not bytes and type(message) is not str):
            return False
        frame = core.frame(message)
        if frame is None:
            return False
        batch = self._batch
        if batch is not None:  # as in send
            batch.append(frame)
            self._batched += len(frame)
            if self._batched > self.options.write_limit or len(batch) >= self._cap:
                self._write_batch()
        else:
            transport = self.transport
            if not transport.is_closing():
                transport.write(frame)
        return True

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                message = await self.recv()
            except WebSocketClosed as exc:
                if exc.ok:
                    return
                raise
            yield message

    async def ping(self, data: bytes | None = None) -> float:
        """Send a ping and wait for its pong; returns the round-trip time in seconds."""
        core = self.core
        if core is None or not core.is_open or self.lost:
            raise self._closed_error()
        pings = self._pings
        if data is None:
            data = struct.pack("!I", random.getrandbits(32))
            while data in pings:
                data = struct.pack("!I", random.getrandbits(32))
        elif data in pings:
            raise ValueError("a ping with this payload is already waiting for its pong")
        waiter: asyncio.Future[float] = self.loop.create_future()
        pings[data] = (waiter, time.perf_counter())
        core.send_ping(data)
        self._flush()
        return await waiter

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason`` and wait for the close handshake and the
        transport to finish (at most ``close_timeout``; then the transport is cut)."""
        self.start_close(code, reason)
        await self.wait_closed()

    def start_close(self, code: int = 1000, reason: str = "") -> None:
        """Send the close frame without waiting for the handshake to finish."""
        core = self.core
        if self.lost:
            return
        if core is None:  # not accepted yet (server): there is no WebSocket to close
            self.transport.close()
            return
        if core.is_open:
            core.send_close(code, reason)
            self._flush()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def abort(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.abort()

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
        if self._paused & _EARLY:
            self._resume(_EARLY)
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
        if self._write_paused:  # smaller reads: what each makes us answer stays small
            return self._view[:self._paused_step]
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        # The hot path of every read: data_received's fast part, inlined (a call less).
        core = self.core
        if core is None or self.tracer is not None:
            self.data_received(self._view[:nbytes])
            return
        events: list[Any] = core.receive_data(self._view[:nbytes])
        if not core.simple:
            self._received(events)
        elif events:  # messages only, nothing to answer: queue them, wake the receiver
            self._messages.extend(events)
            self._queued += len(events[0]) if len(events) == 1 else sum(map(len, events))
            if self._queued > self.options.max_queue and not self._paused & _QUEUE:
                self._pause(_QUEUE)
            waiter = self._recv_waiter
            if waiter is not None:
                # _loop.resume.resume_now(), inlined: the receiving task runs now,
                # inside this callback, not one loop iteration later. When the read held
                # several messages, the frames it sends meanwhile go out in two writes
                # (halves; the rest when it yields), not one system call each.
                if len(events) > 1:
                    self._batch = []
                    self._cap = max(2, (len(events) + 1) // 2)
                callbacks = waiter._callbacks
                if callbacks is not None and len(callbacks) == 1:
                    wakeup, context = callbacks[0]
                    waiter.remove_done_callback(wakeup)
                    waiter.set_result(None)
                    try:
                        context.run(wakeup, waiter)
                    except (RuntimeError, KeyboardInterrupt, SystemExit) as exc:
                        resume_failed(self.loop, exc, wakeup, waiter, context)
                elif not waiter.done():
                    waiter.set_result(None)
                if self._batch is not None:
                    self._write_batch()

    def data_received(self, data: bytes | memoryview) -> None:
        if len(data) > READ_BUFFER or self._write_paused and len(data) > self._paused_step:
            self._receive_large(data)
            return
        core = self.core
        if core is None:
            self._early_data(data)
            return
        events: list[Any] = core.receive_data(data)
        if not core.simple or self.tracer is not None:
            self._received(events)
        elif events:  # as in buffer_updated
            self._messages.extend(events)
            self._queued += len(events[0]) if len(events) == 1 else sum(map(len, events))
            if self._queued > self.options.max_queue and not self._paused & _QUEUE:
                self._pause(_QUEUE)
            waiter = self._recv_waiter
            if waiter is not None:
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
            if self._paused & _BACKLOG and not self.lost:
                self._held = bytes(view[at:])
                return
            # smaller steps once the peer stopped reading: the check above comes sooner
            step = READ_BUFFER if not self._write_paused else self._paused_step
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
        error = self._closed_error()
        for waiter, _ in self._pings.values():
            if not waiter.done():
                waiter.set_exception(error)
        self._pings.clear()
        self._wake_receiver()
        self._wake_drainers()
        if not self._closed.done():
            self._closed.set_result(None)
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
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._backlog = 0
        if self._paused & _BACKLOG:
            held, self._held = self._held, None
            if held is None:
                self._resume(_BACKLOG)
            else:  # the bytes held back come first; the transport stays paused meanwhile
                self._paused &= ~_BACKLOG
                self._receive_large(held)
                if not self._paused and not self.lost and not self.transport.is_closing():
                    self.transport.resume_reading()
        self._wake_drainers()

    # ---------------------------------------------------------------- internals

    def _dispatch(self, events: list[Any]) -> None:
        messages = self._messages
        tracer = self.tracer
        got = False
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                messages.append(event)
                self._queued += len(event)
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
            if self._queued > self.options.max_queue and not self._paused & _QUEUE:
                self._pause(_QUEUE)
        if self.core is not None and not self._can_receive():
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

    def _write_batch(self) -> None:
        """Write the frames held for a read of several messages, and hold no more."""
        batch, self._batch = self._batch, None
        self._batched = 0
        if batch and not self.lost:
            transport = self.transport
            if not transport.is_closing():
                transport.write(batch[0] if len(batch) == 1 else b"".join(batch))

    def _flush(self, auto: bool = False) -> None:
        if self._batch is not None:
            self._write_batch()  # frames held earlier go first
        core = self.core
        assert core is not None
        out = core.data_to_send()
        if out:
            transport = self.transport
            for chunk in out:
                if chunk is SEND_EOF or not chunk:
                    if transport.can_write_eof():
                        try:
                            transport.write_eof()
                        except (OSError, RuntimeError):
                            transport.close()
                    else:
                        transport.close()  # TLS cannot half-close
                elif not transport.is_closing():
                    transport.write(chunk)
                    if auto and self._write_paused:
                        self._backlog += len(chunk)
            if auto and self._backlog > self.options.write_limit and \
                    not self._paused & _BACKLOG:
                self._pause(_BACKLOG)  # the peer pings but does not read: stop reading it
        if self._close_timer is None and not self.lost and core.close_expected():
            self._close_timer = self.loop.call_later(self.options.close_timeout,
                                                     self._on_close_timeout)
            self._wake_receiver()

    def _on_close_timeout(self) -> None:
        self._close_timer = None
        if not self.lost:
            self.transport.abort()

    def _early_data(self, data: bytes | memoryview) -> None:
        early = self._early
        if early is None:
            return
        early += data
        if len(early) > _EARLY_LIMIT and not self._paused & _EARLY:
            self._pause(_EARLY)

    def _can_receive(self) -> bool:
        if self.lost:
            return False
        core = self.core
        return core is None or core.receiving

    def _closed_error(self) -> WebSocketClosed:
        if self.core is None:
            return WebSocketClosed(1006, "", None, ": the connection closed before the "
                                   "WebSocket was accepted")
        return self.core.closed_error()

    def _wake_receiver(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _drain(self) -> None:
        if self.lost:
            raise self._closed_error()
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter
        if self.lost:
            raise self._closed_error()

    def _pause(self, reason: int) -> None:
        if not self._paused and not self.lost:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        self._paused &= ~reason
        if not self._paused and not self.lost and not self.transport.is_closing():
            self.transport.resume_reading()

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

    # ---------------------------------------------------------------- keepalive

    def _start_keepalive(self) -> None:
        interval = self.options.ping_interval
        if interval is not None and self._ka_timer is None and not self.lost:
            self._ka_next = self.loop.time() + interval
            self._ka_timer = self.loop.call_at(self._ka_next, self._keepalive)

    def _keepalive(self) -> None:
        self._ka_timer = None
        core = self.core
        if self.lost or core is None or not core.is_open:
            return
        interval = self.options.ping_interval
        timeout = self.options.ping_timeout
        assert interval is not None
        now = self.loop.time()
        if self._ka_payload is not None:  # a keepalive ping waits for its pong
            if self._paused & ~_BACKLOG:
                # the app holds our reading: no pong can come, through no fault of the peer
                # (paused for our unread answers, the peer does not read: the timeout runs)
                self._ka_deadline = now + (timeout or 0.0)
            elif timeout is not None and now >= self._ka_deadline:
                core.fail(1011, "keepalive ping timeout")
                self._flush()
                return
        elif now >= self._ka_next:
            payload = struct.pack("!I", random.getrandbits(32))
            self._ka_next = now + interval
            if timeout is not None:
                self._ka_payload = payload
                self._ka_deadline = now + timeout
            core.send_ping(payload)
            self._flush()
        when = self._ka_next
        if self._ka_payload is not None:
            when = self._ka_deadline if when <= now else min(when, self._ka_deadline)
        self._ka_timer = self.loop.call_at(max(when, now), self._keepalive)

class PlainWebSocket(WebSocket, asyncio.Protocol):
    """``WebSocket`` that is also a plain ``asyncio.Protocol``, for transports without TLS:
    uvloop then reads into its own buffer and calls ``data_received`` with one ``bytes`` per
    read (two Python calls fewer than ``get_buffer`` + ``buffer_updated``; reads over
    ``READ_BUFFER`` are taken in slices of that size). The stdlib loop still sees a
    ``BufferedProtocol`` and reads into ours. Not for TLS: uvloop's TLS layer would then
    allocate 256 KiB per read (as for ``stream.PlainStreamProtocol``)."""


def websocket_class(tls: bool) -> type[WebSocket]:
    """The protocol class for a WebSocket over a TLS (``WebSocket``) or plain transport."""
    return WebSocket if tls else PlainWebSocket


__all__ = ["Message", "PlainWebSocket", "WebSocket", "WebSocketClosed",
           "WebSocketHandshakeError", "websocket_class"]
