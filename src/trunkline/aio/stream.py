"""``Stream``: the one byte-stream API over every stream transport.

Rules:
- Reads land in a preallocated buffer, never a fresh ``recv(256 KiB)`` per read (CPython
  issue 85451 makes that slow): ours (``get_buffer``) on the stdlib loop and for TLS,
  uvloop's own on plain sockets (uvloop then delivers each read as one ``bytes``, two Python
  calls fewer per read); ``StreamProtocol.for_transport(tls)`` picks, once per open or
  listen (``transport.reads.ReadsBothWays``). Either way one path, ``data_received``.
- A reader waiting for data resumes inside the read callback that brought it (its task's
  wakeup runs right there, when no other task is running), not one loop iteration later:
  that saves a ``call_soon`` handle and a pass through the ready queue per read. When the
  read is what the waiting reader asked for (``read``: up to ``max_bytes``; ``readexactly``:
  exactly ``n``, nothing buffered before), it is the waiter's result as it came: it never
  passes through the buffer.
- Received bytes wait in one ``bytearray``; above ``limit`` the transport stops reading, so a
  slow reader applies backpressure instead of growing memory. One exception: a ``bytes`` read
  that arrives while nothing is buffered waits as it is (``head``), and a ``read`` that takes
  all of it returns that very object: no copy in, no copy out.
- ``write`` never blocks; ``drain`` waits while the transport's write buffer is over its
  high-water mark. ``send`` is ``write`` + ``drain`` in one call that is not a coroutine: it
  writes at once (or raises) and returns what to await, a done future unless the transport
  is over its high-water mark (then ``drain()``): no coroutine object per send.
  ``write_eof`` half-closes where the kind allows.
- EOF is ``b""`` from ``read``; the connection stays writable after the peer's EOF.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from types import TracebackType

from .._loop.resume import resume_now
from ..address import Identity, PeerCredentials
from ..errors import ProtocolError, TransportError, UnsupportedError, os_error_words
from ..trace.events import Side, Step, Tracer
from ..transport.base import local_identity, peer_credentials, peer_identity
from ..transport.reads import ReadsBothWays

# The one future every wait for data needs. With no loop= it looks the running loop up, and
# on Python 3.11 that check calls getpid(): a system call per wait, which costs more than
# loop= (callgrind counts instructions, not system calls, so it never saw this).
_Future = asyncio.Future

READ_BUFFER = 256 * 1024
DEFAULT_LIMIT = 1024 * 1024


class StreamProtocol(ReadsBothWays):
    """Buffers incoming bytes for a ``Stream`` and tracks flow control."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        self._buffer = bytearray(min(limit, READ_BUFFER))
        self._view = memoryview(self._buffer)
        self.data = bytearray()
        # Received bytes not yet read: ``head`` then ``data``. ``head`` holds one data_received
        # bytes object as it came, and only while ``data`` is empty.
        self.head = b""
        self.eof = False
        self.exception: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        # A reader waiting for data, and which one read it takes as it came (as the waiter's
        # result: no copy, no second look at the buffer): _want_min.._want_max bytes.
        self._read_waiter: asyncio.Future[bytes | None] | None = None
        self._want_min = 1
        self._want_max = 0
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._reading_paused = False
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._sent: asyncio.Future[None] = self._loop.create_future()  # send()'s, done
        self._sent.set_result(None)

    # ---- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        # The stdlib loop and TLS: one read path, data_received's (a memoryview is copied).
        self.data_received(self._view[:nbytes])  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        # Every read: uvloop on a plain socket and FIFO pairs call this directly.
        waiter = self._read_waiter
        if waiter is not None:
            # Nothing is buffered while a reader waits with _want_max set: these bytes, as
            # they came, are its result when they are what it asked for. The reader runs now,
            # inside this callback (_loop.resume); a cancelled one leaves them buffered, and
            # one cancelled before its scheduled wake-up ran gives them back (give_back).
            self._read_waiter = None
            if (type(data) is bytes and self._want_min <= len(data) <= self._want_max
                    and resume_now(self._loop, waiter, data)):
                return
        buffered = self.data
        if buffered or self.head or type(data) is not bytes:  # bytes are immutable: keep them
            if self.head:
                self._merge()
            buffered += data
            size = len(buffered)
        else:
            self.head = data
            size = len(data)
        if size > self._limit and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        if waiter is not None:  # it looks at the buffer again
            resume_now(self._loop, waiter, None)

    def _merge(self) -> None:
        """Move ``head`` into ``data``: more bytes came, or a reader needs the general path."""
        self.data += self.head
        self.head = b""

    def give_back(self, waiter: asyncio.Future[bytes | None]) -> None:
        """The reader of ``waiter`` stopped (cancelled) after bytes were handed to it as its
        result but before it ran (its wake-up was scheduled, not run inline): they go back
        in front of anything that came since, so a cancelled read loses nothing."""
        if not waiter.done() or waiter.cancelled():
            return
        got = waiter.result()
        if got:
            if self.head:
                self._merge()
            if self.data:
                self.data[:0] = got
            else:
                self.head = got

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return True  # keep our write side open: half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None:
            self.exception = exc
        self._wake_reader()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(_translate(exc))
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # ---- used by Stream

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None:
            self._read_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def wait_for_data(self) -> asyncio.Future[bytes | None]:
        """A future done (with None) when more data (or EOF) arrives. A plain function
        returning the future, not a coroutine: one frame less on every wait."""
        if self._reading_paused:
            self._resume_reading()
        waiter: asyncio.Future[bytes | None] = _Future(loop=self._loop)
        self._read_waiter = waiter
        self._want_max = 0  # wake me; I look at the buffer myself
        return waiter

    def _resume_reading(self) -> None:
        """Read from the transport again (a reader is about to wait for more)."""
        self._reading_paused = False
        assert self.transport is not None
        self.transport.resume_reading()

    def consumed(self) -> None:
        if self._reading_paused and len(self.data) + len(self.head) <= self._limit:
            self._reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()

    async def drain(self) -> None:
        if self.exception is not None:
            raise _translate(self.exception)
        if not self._write_paused:
            return
        waiter = self._loop.create_future()
        self._drain_waiter = waiter
        await waiter


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, OSError) and not isinstance(exc, TransportError):
        return TransportError(exc.errno, f"the connection broke: {os_error_words(exc)}")
    return exc


class Stream:
    """A connected byte stream: TCP, TLS, Unix, FIFO or inherited socket."""

    def __init__(self, transport: asyncio.Transport, protocol: StreamProtocol,
                 tracer: Tracer | None = None, conn: int = 0, side: Side = "client") -> None:
        self.transport = transport
        self.protocol = protocol
        self._credentials: PeerCredentials | None | bool = False
        # Tracing (off: tracer is None): SEND per write, RECEIVE per read, one CLOSE.
        self.tracer = tracer
        self.conn = conn
        self.side: Side = side

    # ---- identity

    @property
    def local(self) -> Identity:
        return local_identity(self.transport)

    @property
    def peer(self) -> Identity | None:
        return peer_identity(self.transport)

    @property
    def peer_credentials(self) -> PeerCredentials | None:
        """uid/gid/pid of the peer process for Unix sockets and FIFOs; None over IP."""
        if self._credentials is False:
            self._credentials = peer_credentials(self.transport)
        return self._credentials  # type: ignore[return-value]

    @property
    def broken(self) -> TransportError | None:
        """Why the connection ended abnormally (the peer reset it, say); ``None`` while it is
        open or after a clean close. ``read`` returns ``b""`` either way; this tells them
        apart."""
        exc = self.protocol.exception
        if exc is None:
            return None
        error = _translate(exc)
        return error if isinstance(error, TransportError) else TransportError(str(error))

    # ---- reading

    async def read(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` once the peer has closed its side (see
        ``broken`` for whether it reset the connection instead)."""
        p = self.protocol
        if not (p.head or p.data or p.eof or p._reading_paused or self.tracer is not None):
            # Nothing here yet (an echo's every read): wait at once, no look at the buffer.
            waiter: asyncio.Future[bytes | None] = _Future(loop=p._loop)
            p._read_waiter = waiter
            p._want_min = 1
            p._want_max = max_bytes
            try:
                got = await waiter
            except BaseException:
                p.give_back(waiter)
                raise
            if got is not None:
                return got
        tracer = self.tracer
        start = time.monotonic_ns() if tracer is not None else 0
        while True:  # once or twice: look, or wait once and look again
            chunk = p.head
            if chunk:
                if len(chunk) <= max_bytes:  # all of one read, as it came: no copy
                    p.head = b""
                    break
                p._merge()
            data = p.data  # the protocol keeps this one bytearray for its whole life
            if data:
                if len(data) <= max_bytes:
                    chunk = bytes(data)
                    data.clear()
                else:
                    chunk = bytes(data[:max_bytes])
                    del data[:max_bytes]
                break
            if p.eof:
                if p.exception is not None and not isinstance(p.exception, ConnectionError):
                    raise _translate(p.exception)
                return b""
            if p._reading_paused:
                p._resume_reading()
            waiter = _Future(loop=p._loop)  # wait_for_data(), inlined
            p._read_waiter = waiter
            p._want_min = 1  # one read of up to max_bytes, handed over as it came
            p._want_max = max_bytes
            try:
                got = await waiter
            except BaseException:
                p.give_back(waiter)
                raise
            if got is not None:
                chunk = got
                break
        if p._reading_paused:
            p.consumed()
        if tracer is not None:
            tracer.record(Step.RECEIVE, self.side, start, self.conn, bytes=len(chunk))
        return chunk

    async def readexactly(self, n: int) -> bytes:
        p = self.protocol
        if n > 0 and not (p.head or p.data or p.eof or p._reading_paused
                          or self.tracer is not None):
            # Nothing here yet (a ping's every answer): wait at once, as read() does.
            waiter: asyncio.Future[bytes | None] = _Future(loop=p._loop)
            p._read_waiter = waiter
            p._want_min = p._want_max = n
            try:
                got = await waiter
            except BaseException:
                p.give_back(waiter)
                raise
            if got is not None:
                return got
        tracer = self.tracer
        start = time.monotonic_ns() if tracer is not None else 0
        while True:  # as in read()
            chunk = p.head
            if len(chunk) == n:  # the common case: exactly one read's bytes, as they came
                p.head = b""
                break
            if chunk:  # more or fewer than asked: the general path
                p._merge()
            data = p.data
            if len(data) >= n:
                if len(data) == n:  # exactly what was asked; one copy, not two
                    chunk = bytes(data)
                    data.clear()
                else:
                    chunk = bytes(data[:n])
                    del data[:n]
                break
            if p.eof:
                raise ProtocolError(f"connection closed after {len(data)} of {n} bytes")
            if p._reading_paused:
                p._resume_reading()
            waiter = _Future(loop=p._loop)  # wait_for_data(), inlined
            p._read_waiter = waiter
            # Nothing buffered: one read of exactly n bytes is handed over as it came.
            p._want_min = n
            p._want_max = 0 if data else n
            try:
                got = await waiter
            except BaseException:
                p.give_back(waiter)
                raise
            if got is not None:
                chunk = got
                break
        if p._reading_paused:
            p.consumed()
        if tracer is not None:
            tracer.record(Step.RECEIVE, self.side, start, self.conn, bytes=n)
        return chunk

    async def readuntil(self, separator: bytes = b"\n", limit: int = DEFAULT_LIMIT) -> bytes:
        """Bytes up to and including ``separator``; at EOF, whatever is left."""
        p = self.protocol
        t_start = time.monotonic_ns() if self.tracer is not None else 0
        start = 0
        while True:
            if p.head:
                p._merge()
            index = p.data.find(separator, start)
            if index >= 0:
                end = index + len(separator)
                chunk = bytes(p.data[:end])
                del p.data[:end]
                p.consumed()
                if self.tracer is not None:
                    self.tracer.record(Step.RECEIVE, self.side, t_start, self.conn,
                                       bytes=len(chunk))
                return chunk
            if len(p.data) > limit:
                raise ProtocolError(f"no {separator!r} within {limit} bytes")
            if p.eof:
                chunk = bytes(p.data)
                p.data.clear()
                return chunk
            start = max(0, len(p.data) - len(separator) + 1)
            await p.wait_for_data()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.read():
            yield chunk

    # ---- writing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.protocol.exception is not None:
            raise _translate(self.protocol.exception)
        self.transport.write(data)
        if self.tracer is not None:
            self.tracer.record(Step.SEND, self.side, time.monotonic_ns(), self.conn,
                               bytes=len(data))

    async def drain(self) -> None:
        await self.protocol.drain()

    def send(self, data: bytes | bytearray | memoryview) -> Awaitable[None]:
        """``write`` then ``drain``: ``await stream.send(data)``. Not a coroutine (see the
        module docstring): the bytes are written (or the error raised) by the call itself."""
        p = self.protocol
        if p.exception is not None:  # write(), inlined: this is every echo's hot path
            raise _translate(p.exception)
        self.transport.write(data)
        if self.tracer is not None:
            self.tracer.record(Step.SEND, self.side, time.monotonic_ns(), self.conn,
                               bytes=len(data))
        if p._write_paused or p.exception is not None:  # else drain() would return at once
            return p.drain()
        return p._sent

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def write_eof(self) -> None:
        """Half-close: the peer reads EOF, and we can still read its replies."""
        if not self.transport.can_write_eof():
            raise UnsupportedError("this transport cannot half-close (TLS cannot); close it")
        self.transport.write_eof()

    # ---- closing

    def close(self) -> None:
        if self.tracer is not None:
            self._trace_close()
        self.transport.close()

    def abort(self) -> None:
        if self.tracer is not None:
            self._trace_close(abort=True)
        self.transport.abort()

    def _trace_close(self, abort: bool = False) -> None:
        assert self.tracer is not None
        if not self.transport.is_closing():  # once; a peer EOF seen first means the peer closed
            peer = "server" if self.side == "client" else "client"
            self.tracer.record(Step.CLOSE, self.side, time.monotonic_ns(), self.conn,
                               by=peer if self.protocol.eof else self.side, abort=abort)

    async def wait_closed(self) -> None:
        await self.protocol.closed

    async def aclose(self) -> None:
        self.close()
        await self.protocol.closed

    @property
    def at_eof(self) -> bool:
        return self.protocol.eof and not self.protocol.data and not self.protocol.head

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<Stream {self.local} -> {self.peer}>"
