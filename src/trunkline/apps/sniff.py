"""Tell HTTP/1.x from raw bytes by a connection's first bytes, then hand the transport over.

    listen(address, lambda: SniffProtocol(state, http=make_http, raw=make_raw), options)

Rules:
- HTTP when the first line starts like an HTTP/1.x request line: a method of A-Z (at most
  ``MAX_METHOD`` letters), one space, a target of visible ASCII, one space, ``HTTP/1.``.
  Anything that cannot grow into that is raw.
- Decided on the first byte that settles it: a first byte that is not A-Z is raw at once,
  ``GET / HTTP/1.`` is HTTP without waiting for the rest of the line. While the prefix is
  still ambiguous (``G``, ``GET /ind``) more bytes are awaited, but only ``timeout`` seconds
  from the first byte (more bytes do not push it back) and ``max_bytes`` bytes; then, or at
  EOF, it is raw.
- The decision swaps the protocol: ``transport.set_protocol(new)``, ``new.connection_made``,
  the sniffed bytes as one read, then the EOF if one came. From then on the sniffer is out
  of the path, so neither protocol pays for it.
- An undecided connection sits in ``state.connections`` (the server's shutdown closes it, or
  decides it raw if bytes are waiting); the protocol it becomes takes its place there.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from ..server.http import ServerState
from ..transport.reads import ReadsBothWays, feed

MAX_METHOD = 20  # longer than any registered method made of A-Z only
SNIFF_TIMEOUT = 0.5  # seconds an ambiguous prefix may wait for more bytes
SNIFF_BYTES = 8 * 1024 + 32  # an ambiguous prefix this long is raw (a longer line gets 414)

_HTTP = re.compile(rb"[A-Z]{1,%d} [\x21-\x7e]+ HTTP/1\." % MAX_METHOD)
# Every proper prefix of what _HTTP matches (nothing after the last byte is checked).
_PREFIX = re.compile(rb"[A-Z]{1,%d}(?: (?:[\x21-\x7e]+(?: (?:H(?:T(?:T(?:P(?:/1?)?)?)?)?)?)?)?)?"
                     % MAX_METHOD)

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


def looks_like_http(prefix: bytes | bytearray) -> bool | None:
    """True: an HTTP/1.x request line starts here; False: it cannot; None: more bytes
    would tell."""
    if _HTTP.match(prefix):
        return True
    if _PREFIX.fullmatch(prefix):
        return None
    return False


class SniffProtocol(ReadsBothWays):
    """The first protocol of a connection: reads until it can tell HTTP from raw bytes.

    Both read paths (``ReadsBothWays``): the stdlib loop and TLS read into our small buffer
    (no 256 KiB ``recv`` per read), uvloop on a plain socket and FIFO pairs call
    ``data_received``; ``SniffProtocol.for_transport(tls)`` picks."""

    def __init__(self, state: ServerState, *, http: ProtocolFactory, raw: ProtocolFactory,
                 timeout: float = SNIFF_TIMEOUT, max_bytes: int = SNIFF_BYTES) -> None:
        self.state = state
        self._http = http
        self._raw = raw
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._data = bytearray()
        self._buffer: bytearray | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.decided: asyncio.BaseProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.connections.add(self)

    def get_buffer(self, sizehint: int) -> bytearray:
        if self._buffer is None:
            self._buffer = bytearray(16 * 1024)
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        assert self._buffer is not None
        self.data_received(self._buffer[:nbytes])

    def data_received(self, data: bytes | bytearray) -> None:
        if self.decided is not None:  # a read the transport had started before the swap
            feed(self.decided, bytes(data))
            return
        buffered = self._data
        buffered += data
        verdict = looks_like_http(buffered)
        if verdict is None and len(buffered) < self._max_bytes:
            if self._timer is None:  # from the first byte, never pushed back
                self._timer = asyncio.get_running_loop().call_later(
                    self._timeout, self._on_timeout)
            return
        self._switch(self._http if verdict else self._raw)

    def eof_received(self) -> bool | None:
        # Still undecided (or nothing came): raw. The new protocol answers for the EOF.
        new = self._switch(self._raw) if self.decided is None else self.decided
        eof_received = getattr(new, "eof_received", None)
        return eof_received() if eof_received is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self.decided is None:
            self.state.connections.forget(self)

    def _on_timeout(self) -> None:
        self._timer = None
        transport = self.transport
        if self.decided is None and transport is not None and not transport.is_closing():
            self._switch(self._raw)

    def _switch(self, factory: ProtocolFactory) -> asyncio.BaseProtocol:
        """Hand the transport (and the bytes read so far) to ``factory()``'s protocol."""
        self._cancel_timer()
        transport = self.transport
        assert transport is not None
        new = factory()
        self.decided = new
        # Out of the count before the new protocol counts itself (the HTTP server's
        # connection cap); discard, not forget: the connection lives on, nobody is woken.
        self.state.connections.discard(self)
        transport.set_protocol(new)
        new.connection_made(transport)
        data, self._data = bytes(self._data), bytearray()
        if data and not transport.is_closing():
            feed(new, data)
        return new

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ---- the server's shutdown (objects in state.connections have these)

    def shutdown(self) -> None:
        """Nothing asked yet: close. Bytes waiting: they are raw, and get their echo."""
        transport = self.transport
        if self.decided is not None or transport is None:
            return
        if self._data:
            new = self._switch(self._raw)
            shutdown = getattr(new, "shutdown", None)
            if shutdown is not None:
                shutdown()
        else:
            self._cancel_timer()
            transport.close()

    def abort(self) -> None:
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()


__all__ = ["MAX_METHOD", "SNIFF_BYTES", "SNIFF_TIMEOUT", "SniffProtocol", "looks_like_http"]
