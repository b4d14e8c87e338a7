"""``HttpClientConnection``: the asyncio protocol joining the sans-I/O client core to a transport.

Rules:
- Any stream transport works (TCP, TLS, Unix, FIFO, inherited fd): ``connect.py``
  ``open_connection`` opens one through ``trunkline.transport.open_transport``.
- No Task per request: the caller's coroutine writes the request and awaits one future, which
  the protocol callbacks resolve (at the response's end, or at its head when streaming).
- Reads land in a preallocated buffer (``BufferedProtocol``); a streamed body that the reader
  does not keep up with pauses the socket at ``STREAM_HIGH_WATER`` bytes.
- Timeouts cost one timer per request: it is armed once, and when it fires it checks the time
  of the last received byte and re-arms itself if the peer was not silent long enough.
- A connection is handed back to its pool the moment its response completes with keep-alive;
  anything else (an error, an early response to an unfinished upload, an abandoned stream)
  closes it.
- A server may answer before the body is sent (413) and close; our next write then fails
  (EPIPE/ECONNRESET) and the transport closes without reading what had arrived. So while a
  body goes out over a plain socket we hold a duplicate of its descriptor, and on such a
  write error read the answer from it (the kernel hands out queued data before the error):
  a write error after the response arrived is not a failure of the exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable

from ..errors import ProtocolError, os_error_words
from ..protocol.http_client import HeaderPairs, ResponseParser
from ..trace.events import Step, Tracer
from ..transport.base import refusal_hint
from .errors import ReadTimeoutError, ServerDisconnectedError, WriteTimeoutError
from .models import STREAM_HIGH_WATER, Response

READ_BUFFER = 64 * 1024


class HttpClientConnection(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tracer: Tracer | None = None,
                 conn_id: int = 0) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser(self)
        self._buffer = bytearray(READ_BUFFER)
        self._view = memoryview(self._buffer)
        self.closed = False
        self.closed_by: str | None = None
        self.idle_since = 0.0
        self.requests = 0  # requests started on this connection
        self.on_release: Callable[[HttpClientConnection], None] | None = None  # set by the pool
        self.on_close: Callable[[HttpClientConnection], None] | None = None
        # tracing: the tracer of the current (or last) request, and this connection's number in it
        self.tracer = tracer
        self.conn_id = conn_id
        # the exchange in flight
        self._response: Response | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._stream = False
        self._got_bytes = False
        self._refusal: str | None = None
        self._sending = False
        self._must_close = False
        self.written_ns = 0  # traced: when the request (its head, or all of it) was written
        self._first_ns = 0  # traced: when its answer's first byte came
        # flow control
        self._reading_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # timeouts
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout: float | None = None
        self._deadline: float | None = None
        self._last_rx = 0.0
        # a duplicate of the socket's descriptor while a body is being sent (see the rules)
        self._rescue_fd: int | None = None

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # what to say if a local server of another uid closes this connection before a byte
        # (it refused us); only knowable while connected
        self._refusal = refusal_hint(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._view[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        if self._response is None:
            # Bytes while idle: the server is out of step with us; never reuse this connection.
            self.close()
            return
        if not self._got_bytes:
            self._got_bytes = True
            tracer = self.tracer
            if tracer is not None:
                # the wait since the request went out (a body still going out: since its head)
                first = tracer.record(Step.FIRST_BYTE, "client", self.written_ns, self.conn_id)
                self._first_ns = first.end_ns
        if self._timer is not None:
            self._last_rx = self.loop.time()
        try:
            self.parser.feed(data)
        except ProtocolError as exc:
            self._fail(exc)
            self.abort()

    def eof_received(self) -> bool:
        if self.closed_by is None:
            self.closed_by = "server"
        if self._response is not None:
            try:
                self.parser.feed_eof()
            except ProtocolError:
                self._fail(self._disconnected())
        self._mark_closed()
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed_by is None:
            self.closed_by = "server"
        if self._response is not None and exc is not None and self._rescue_fd is not None:
            self._read_what_arrived()
        if self._response is not None:
            self._fail(self._disconnected(exc))
        self._mark_closed()
        self._drop_descriptor()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        tracer = self.tracer
        if tracer is not None:
            tracer.record(Step.CLOSE, "client", time.monotonic_ns(), self.conn_id,
                          by=self.closed_by, requests=self.requests)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ parser callbacks

    def on_response_head(self, status: int, reason: bytes, version: str,
                         headers: HeaderPairs) -> None:
        response = self._response
        assert response is not None
        response.status_code = status
        response.reason_bytes = reason
        response.http_version = version
        response.raw_headers = headers
        if self._stream:
            response._conn = self
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def on_response_body(self, data: bytes) -> None:
        response = self._response
        assert response is not None
        response._chunks.append(data)
        response.num_bytes += len(data)
        if self._stream:
            response._buffered += len(data)
            # Never pause while the request body is still going out: a server that echoes
            # as it reads would wait for us while we wait for it.
            if (response._buffered > STREAM_HIGH_WATER and not self._reading_paused
                    and not self._sending):
                self._reading_paused = True
                assert self.transport is not None
                self.transport.pause_reading()
            response._wake()

    def on_response_complete(self, keep_alive: bool) -> None:
        response = self._response
        assert response is not None
        self._response = None
        if self._rescue_fd is not None:
            self._drop_descriptor()
        response._complete = True
        response._conn = None
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
        tracer = self.tracer
        if tracer is not None:
            # from the first byte: the content transfer
            tracer.record(Step.RESPONSE_DONE, "client", self._first_ns or self.written_ns,
                          self.conn_id, status=response.status_code,
                          head_bytes=len(response.head_bytes), bytes=response.num_bytes)
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._stream:
            response._wake()
        if keep_alive and not self._sending and not self._must_close and not self.closed:
            if self._reading_paused:
                self._reading_paused = False
                assert self.transport is not None
                self.transport.resume_reading()
            self.idle_since = self.loop.time()
            if self.on_release is not None:
                self.on_release(self)
        else:
            if not keep_alive and self.closed_by is None:
                self.closed_by = "server"  # it said Connection: close (or spoke HTTP/1.0)
            self.close()

    # ------------------------------------------------------------------ used by the client

    @property
    def usable(self) -> bool:
        transport = self.transport
        return not self.closed and transport is not None and not transport.is_closing()

    def start(self, response: Response, data: bytes, *, head: bool, stream: bool,
              read_timeout: float | None, deadline: float | None,
              must_close: bool, body: bytes | None = None, waiting: bool = True
              ) -> asyncio.Future[None]:
        """Send a request (``data``, then ``body`` if given, each in one write) and return the
        future that completes with the response (its head when ``stream``). With
        ``waiting=False`` the caller sends a body first and then calls ``wait_response``."""
        assert self.transport is not None
        self.requests += 1
        self._response = response
        self._stream = stream
        self._got_bytes = False
        self._must_close = must_close
        self._read_timeout = read_timeout
        self._deadline = deadline
        self.parser.expect(head=head)
        waiter = self.loop.create_future()
        self._waiter = waiter
        if body is not None or not waiting:
            self._hold_descriptor()
        self.transport.write(data)
        if body is not None:
            self.transport.write(body)
        if self.tracer is not None:
            self.written_ns = time.monotonic_ns()
            self._first_ns = 0
        if waiting:
            self.wait_response()
        else:
            self._sending = True
        return waiter

    def wait_response(self) -> None:
        """The request is fully sent: from now on the read timeout counts."""
        self._sending = False
        if self._read_timeout is None and self._deadline is None:
            return
        loop = self.loop
        now = self._last_rx = loop.time()
        when = self._next_deadline(now)
        assert when is not None
        self._timer = loop.call_at(when, self._on_timer)

    @property
    def exchange_open(self) -> bool:
        """Whether the response is still being waited for (False once it ended early)."""
        return self._response is not None

    async def write_body_part(self, data: bytes, write_timeout: float | None) -> None:
        if self.closed or self.transport is None:
            raise self._disconnected()
        self.transport.write(data)
        if self._write_paused:
            waiter = self.loop.create_future()
            self._drain_waiter = waiter
            try:
                async with asyncio.timeout(write_timeout):
                    await waiter
            except TimeoutError:
                self.abort()
                raise WriteTimeoutError(f"the server read none of the request body for "
                                        f"{write_timeout} s") from None

    def resume_body(self) -> None:
        """The reader of a streamed body caught up: read from the socket again."""
        if self._reading_paused:
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()

    def abandon(self) -> None:
        """The caller gave up on the exchange (closed a stream early, was cancelled)."""
        if self._response is not None:
            self._response._conn = None
            self._response = None
            self._waiter = None
        self.close()

    def close(self) -> None:
        if self.closed_by is None:
            self.closed_by = "client"
        self._mark_closed()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.closed_by is None:
            self.closed_by = "client"
        self._mark_closed()
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------ internals

    def _hold_descriptor(self) -> None:
        """Keep a duplicate of a plain socket's descriptor while the body goes out."""
        transport = self.transport
        if self._rescue_fd is not None or transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is None or transport.get_extra_info("sslcontext") is not None:
            return  # TLS records cannot be read beside the TLS layer; pipes have no socket
        with contextlib.suppress(OSError):
            self._rescue_fd = os.dup(sock.fileno())

    def _drop_descriptor(self) -> None:
        fd, self._rescue_fd = self._rescue_fd, None
        if fd is not None:
            os.close(fd)

    def _read_what_arrived(self) -> None:
        """After a write error: feed the parser what the server sent before it closed."""
        fd = self._rescue_fd
        assert fd is not None
        while self._response is not None:
            try:
                data = os.read(fd, READ_BUFFER)
            except OSError:  # EAGAIN: nothing more; ECONNRESET: after the queued data
                return
            if not data:
                with contextlib.suppress(ProtocolError):
                    self.parser.feed_eof()
                return
            self.data_received(data)

    def _mark_closed(self) -> None:
        if self._rescue_fd is not None and self._response is None:
            self._drop_descriptor()
        if not self.closed:
            self.closed = True
            timer = self._timer
            if timer is not None:
                self._timer = None
                timer.cancel()
            if self.on_close is not None:
                self.on_close(self)

    def _next_deadline(self, now: float) -> float | None:
        when = None if self._read_timeout is None else self._last_rx + self._read_timeout
        if self._deadline is not None and (when is None or self._deadline < when):
            when = self._deadline
        return when

    def _on_timer(self) -> None:
        self._timer = None
        if self._response is None:
            return
        now = self.loop.time()
        when = self._next_deadline(now)
        if when is not None and (when > now + 0.001 or self._reading_paused):
            # bytes came since the timer was armed, or the reader is the slow one
            self._timer = self.loop.call_at(max(when, now + 0.001), self._on_timer)
            return
        if self._deadline is not None and now >= self._deadline - 0.001:
            message = "the request ran past its total timeout"
        else:
            message = (f"the server sent nothing for {self._read_timeout} s (read timeout) "
                       + ("while the response head was awaited" if not self._got_bytes
                          else "in the middle of the response"))
        self._fail(ReadTimeoutError(message))
        self.abort()

    def _disconnected(self, exc: BaseException | None = None) -> ServerDisconnectedError:
        why = f" ({os_error_words(exc)})" if exc is not None else ""
        if not self._got_bytes:
            if self._refusal is not None and self.requests == 1:
                error = ServerDisconnectedError(self._refusal, before_response=True)
            else:
                error = ServerDisconnectedError("the server closed the connection without "
                                                f"sending a response{why}", before_response=True)
        else:
            error = ServerDisconnectedError("the server closed the connection before the "
                                            f"response was complete{why}",
                                            before_response=False)
        error.__cause__ = exc  # a reset and a clean close mean different things to callers
        return error

    def _fail(self, exc: BaseException) -> None:
        response = self._response
        if response is None:
            return
        self._response = None
        self._must_close = True
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
            return
        response._error = exc
        response._conn = None
        response._wake()
