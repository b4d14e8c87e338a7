"""The write side of ``WebSocketProtocol`` (``websocket_protocol.py``, which provides the
attributes below): sending, the batches of answers to one read, the flush of what the core
has to send, the close timer, keepalive pings, and pausing reading for any of its reasons.

Rules (the protocol module has the rest):
- A small frame goes straight to the transport (``try_send``); anything else goes through
  the core (``send``). Either waits while the transport's writing is paused.
- Answers we write on our own (pongs, close echoes) while the peer does not read count
  against ``write_limit``: past it, reading stops (``BACKLOG``) until the peer reads.
- Held batch frames are written before anything else, so order is kept.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from typing import Literal

from ..errors import WebSocketClosed
from ..protocol.websocket import SEND_EOF, WebSocketCore, WebSocketOptions
from ..trace.events import Step, Tracer

# Reasons reading is paused (a bit set): the app's queue is full, our own answers wait for a
# peer that does not read, a client sent too much before the server accepted.
QUEUE, BACKLOG, EARLY = 1, 2, 4


class WebSocketWrites:
    """Sending and pausing for ``WebSocketProtocol``."""

    loop: asyncio.AbstractEventLoop
    options: WebSocketOptions
    side: Literal["client", "server"]
    core: WebSocketCore | None
    tracer: Tracer | None
    conn_id: int
    transport: asyncio.Transport
    lost: bool
    write_paused: bool
    paused: int
    _backlog: int
    _recv_waiter: asyncio.Future[str | bytes | None] | None
    _drain_waiters: list[asyncio.Future[None]]
    _batch: list[bytes] | None
    _batched: int
    _cap: int
    _pings: dict[bytes, tuple[asyncio.Future[float], float]]
    _close_timer: asyncio.TimerHandle | None
    _ka_timer: asyncio.TimerHandle | None
    _ka_payload: bytes | None
    _ka_deadline: float
    _ka_next: float

    def closed_error(self) -> WebSocketClosed:
        if self.core is None:
            return WebSocketClosed(1006, "", None, ": the connection closed before the "
                                   "WebSocket was accepted")
        return self.core.closed_error()

    def try_send(self, message: str | bytes | bytearray | memoryview) -> bool:
        """Write ``message`` at once when nothing needs waiting for (open, one small text or
        binary frame, no tracer, the transport under its limit): True. Else False: then
        ``await send(message)``, which waits or raises as it must."""
        core = self.core
        if self.write_paused or self.tracer is not None or self.lost or core is None:
            return False
        frame = core.frame(message)  # None unless str or bytes
        if frame is None:
            return False
        batch = self._batch
        if batch is not None:  # answering a read of several messages: see _batch
            batch.append(frame)
            self._batched += len(frame)
            if self._batched > self.options.write_limit or len(batch) >= self._cap:
                self._write_batch()
                self._batch = []  # keep holding: the rest go out together (data_received)
        else:
            transport = self.transport
            if not transport.is_closing():
                transport.write(frame)
        return True

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send one message through the core (any size, compression, tracing); waits while
        the peer is not reading. ``try_send`` first is the fast path."""
        core = self.core
        if core is None or not core.is_open or self.lost:
            raise self.closed_error()
        tracer = self.tracer
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
        if self.write_paused:
            await self.drain()

    async def drain(self) -> None:
        """Wait until the transport's writing resumes."""
        if self.lost:
            raise self.closed_error()
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter
        if self.lost:
            raise self.closed_error()

    def ping_waiter(self, data: bytes | None) -> asyncio.Future[float]:
        """Send a ping; the future gets the round-trip time in seconds when its pong comes."""
        core = self.core
        if core is None or not core.is_open or self.lost:
            raise self.closed_error()
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
        return waiter

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

    def abort(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.abort()

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
                    if auto and self.write_paused:
                        self._backlog += len(chunk)
            if auto and self._backlog > self.options.write_limit and \
                    not self.paused & BACKLOG:
                self.pause_for(BACKLOG)  # the peer pings but does not read: stop reading it
        if self._close_timer is None and not self.lost and core.close_expected():
            self._close_timer = self.loop.call_later(self.options.close_timeout,
                                                     self._on_close_timeout)
            self._wake_receiver()

    def _on_close_timeout(self) -> None:
        self._close_timer = None
        if not self.lost:
            self.transport.abort()

    def _wake_receiver(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def pause_for(self, reason: int) -> None:
        if not self.paused and not self.lost:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_for(self, reason: int) -> None:
        self.paused &= ~reason
        if not self.paused and not self.lost and not self.transport.is_closing():
            self.transport.resume_reading()

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
            if self.paused & ~BACKLOG:
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


__all__ = ["BACKLOG", "EARLY", "QUEUE", "WebSocketWrites"]
