"""A bidirectional byte relay between any two stream addresses (socat-like).

    relay = await trunkline.relay.start_relay("tcp://127.0.0.1:8000", "unix:///run/app.sock")
    ...
    await relay.aclose()

Rules:
- Bytes move at the asyncio Protocol/Transport level: each side reads into a preallocated
  buffer (``BufferedProtocol``) and writes it straight to the other side's transport. No
  Stream objects and no per-chunk coroutines on the hot path.
- A chunk the other transport could not send at once stays referenced by that transport
  (uvloop keeps the memoryview), so the reading side then takes a fresh buffer instead of
  overwriting bytes still queued: zero copies in the common case, no corruption in the other.
- Backpressure: when one side's write buffer rises over its high-water mark, the other side
  stops reading until it drains.
- Half-close is propagated: EOF read from one side becomes ``write_eof`` on the other (after
  the queued bytes). The connection closes when both directions have ended, or when either
  side is lost. A side that cannot half-close (TLS) is left open until the other direction
  ends too, so no reply is cut off.
- One log line per connection at close (logger ``trunkline.relay``): both ends, bytes each
  way and duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from .address import Address, format_address, is_datagram, parse_address
from .errors import TrunklineError, UnsupportedError
from .transport import ConnectOptions, Listener, ListenOptions, listen, open_transport
from .transport.base import describe, peer_identity

log = logging.getLogger("trunkline.relay")

#: Bytes read per ``recv``: large enough that bulk transfers take few system calls.
DEFAULT_BUFFER = 256 * 1024
#: Write-buffer high-water mark per side; the opposite side stops reading above it.
DEFAULT_HIGH_WATER = 1024 * 1024


@dataclass
class RelayStats:
    """Counters over the relay's life. ``up`` is client -> target, ``down`` target -> client."""

    accepted: int = 0
    active: int = 0
    failed: int = 0  # connections closed because the target could not be reached
    bytes_up: int = 0
    bytes_down: int = 0


@dataclass(frozen=True)
class ConnectionReport:
    """What one relayed connection did; passed to ``on_close`` and logged."""

    number: int
    client: str
    target: str
    bytes_up: int
    bytes_down: int
    duration_s: float
    error: str | None = None


OnClose = Callable[[ConnectionReport], None]


class _Side(asyncio.BufferedProtocol):
    """One socket of a relayed pair. Reads into its buffer and writes to ``other``."""

    def __init__(self, conn: _Connection, buffer_size: int, high_water: int) -> None:
        self.conn = conn
        self.other: _Side | None = None
        self.transport: asyncio.Transport | None = None
        self.count = 0  # bytes read from this side
        self.read_done = False  # EOF (or loss) seen on this side
        self.lost = False
        self._size = buffer_size
        self._high = high_water
        self._buffer = memoryview(bytearray(buffer_size))
        self._pending = bytearray()  # read before the other side existed

    # ---- the hot path

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.count += nbytes
        other = self.other
        if other is None or other.transport is None:
            self._pending += self._buffer[:nbytes]
            assert self.transport is not None
            self.transport.pause_reading()  # until the other side is connected
            return
        out = other.transport
        if out.is_closing():
            return  # the other side is gone; its loss closes us soon
        out.write(self._buffer[:nbytes])
        if out.get_write_buffer_size():
            # The transport kept a view of our buffer; read the next chunk elsewhere.
            self._buffer = memoryview(bytearray(self._size))

    def eof_received(self) -> bool:
        self.read_done = True
        other = self.other
        if other is not None and other.transport is not None:
            self.conn.forward_eof(self, other)
        return True  # keep our write side open for the other direction

    # ---- flow control: our write buffer is full -> the other side stops reading

    def pause_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        other = self.other
        if other is not None and other.transport is not None and not other.read_done:
            other.transport.resume_reading()

    # ---- lifecycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        with contextlib.suppress(Exception):
            transport.set_write_buffer_limits(high=self._high)  # type: ignore[attr-defined]
        self.conn.side_made(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.read_done = True
        self.conn.side_lost(self, exc)

    def attach(self, other: _Side) -> None:
        """The other side is connected: flush what arrived meanwhile and start relaying."""
        self.other = other
        assert self.transport is not None and other.transport is not None
        if self._pending:
            other.transport.write(bytes(self._pending))
            self._pending.clear()
        if self.read_done and not self.lost:
            self.conn.forward_eof(self, other)
        elif not self.lost:
            self.transport.resume_reading()


class _Connection:
    """A client connection and the target connection opened for it."""

    def __init__(self, relay: Relay, number: int) -> None:
        self.relay = relay
        self.number = number
        self.started = time.monotonic()
        self.client = _Side(self, relay.buffer_size, relay.high_water)
        self.target: _Side | None = None
        self.client_name = "?"
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._reported = False

    def side_made(self, side: _Side) -> None:
        if side is self.client:
            assert side.transport is not None
            self.client_name = describe(peer_identity(side.transport))
            self.relay._active.add(self)
            self.relay.stats.accepted += 1
            self.relay.stats.active += 1
            self._task = asyncio.get_running_loop().create_task(self._open_target())

    async def _open_target(self) -> None:
        relay = self.relay
        target = _Side(self, relay.buffer_size, relay.high_water)
        target.other = self.client
        try:
            await open_transport(relay.target, lambda: target, relay.connect_options)
        except asyncio.CancelledError:
            if target.transport is not None:
                target.transport.abort()
            raise
        except (TrunklineError, OSError) as exc:
            self.error = f"cannot reach {relay.target_url}: {exc}"
            relay.stats.failed += 1
            log.warning("connection %d from %s: %s", self.number, self.client_name, self.error)
            if self.client.transport is not None:
                self.client.transport.abort()
            return
        self.target = target
        if self.client.lost:
            assert target.transport is not None
            target.transport.close()
            return
        target.attach(self.client)
        self.client.attach(target)

    def forward_eof(self, src: _Side, dst: _Side) -> None:
        """``src`` has no more to send: half-close ``dst``, or close once both are done."""
        assert dst.transport is not None
        if dst.read_done:
            self._close_both()
        elif dst.transport.can_write_eof() and not dst.transport.is_closing():
            dst.transport.write_eof()  # sent after the queued bytes
        # else (TLS): leave dst open so the other direction can finish.

    def side_lost(self, side: _Side, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = str(exc) or type(exc).__name__
        # A connect still in flight finishes on its own and closes what it opened.
        other = side.other if side.other is not None else (
            self.target if side is self.client else self.client)
        if other is not None and other.transport is not None and not other.lost:
            other.transport.close()  # flushes what is queued first
        if self.client.lost and (self.target is None or self.target.lost):
            self._report()

    def _close_both(self) -> None:
        for side in (self.client, self.target):
            if side is not None and side.transport is not None:
                side.transport.close()

    def abort(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        for side in (self.client, self.target):
            if side is not None and side.transport is not None:
                side.transport.abort()

    def _report(self) -> None:
        if self._reported:
            return
        self._reported = True
        relay = self.relay
        up = self.client.count
        down = self.target.count if self.target is not None else 0
        relay.stats.active -= 1
        relay.stats.bytes_up += up
        relay.stats.bytes_down += down
        relay._active.discard(self)
        report = ConnectionReport(self.number, self.client_name, relay.target_url, up, down,
                                  time.monotonic() - self.started, self.error)
        log.info("connection %d closed: %s -> %s, %d bytes up, %d bytes down, %.3f s%s",
                 report.number, report.client, report.target, up, down, report.duration_s,
                 f" ({report.error})" if report.error else "")
        if relay.on_close is not None:
            relay.on_close(report)
        if not relay._active and relay._idle is not None and not relay._idle.done():
            relay._idle.set_result(None)


class Relay:
    """A running relay: one listener, a connection to ``target`` per accepted client."""

    def __init__(self, target: Address, connect_options: ConnectOptions, buffer_size: int,
                 high_water: int, on_close: OnClose | None) -> None:
        self.target = target
        self.target_url = format_address(target)
        self.connect_options = connect_options
        self.buffer_size = buffer_size
        self.high_water = high_water
        self.on_close = on_close
        self.stats = RelayStats()
        self.listener: Listener | None = None
        self._active: set[_Connection] = set()
        self._numbers = itertools.count(1)
        self._idle: asyncio.Future[None] | None = None
        self._stopped = asyncio.get_running_loop().create_future()

    @property
    def address(self) -> Address:
        """The bound listening address (port 0 replaced by the real port)."""
        assert self.listener is not None
        return self.listener.address

    @property
    def url(self) -> str:
        return format_address(self.address)

    def _new_connection(self) -> _Side:
        return _Connection(self, next(self._numbers)).client

    def close(self) -> None:
        """Stop accepting; connections in flight go on until ``wait_closed``'s grace ends."""
        if self.listener is not None:
            self.listener.close()
        if not self._stopped.done():
            self._stopped.set_result(None)

    async def wait_closed(self, grace: float | None = 5.0) -> None:
        if self.listener is not None:
            await self.listener.wait_closed()
        if self._active:
            self._idle = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._idle), grace)
        for conn in list(self._active):
            conn.abort()
        for _ in range(3):  # let connection_lost callbacks run
            if not self._active:
                break
            await asyncio.sleep(0)

    async def aclose(self, grace: float | None = 5.0) -> None:
        self.close()
        await self.wait_closed(grace)

    async def serve_forever(self) -> None:
        """Wait until ``close`` is called (from a signal handler, say)."""
        await asyncio.shield(self._stopped)

    async def __aenter__(self) -> Relay:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


async def start_relay(listen_url: str | Address, target_url: str | Address, *,
                      listen_options: ListenOptions | None = None,
                      connect_options: ConnectOptions | None = None,
                      buffer_size: int = DEFAULT_BUFFER, high_water: int = DEFAULT_HIGH_WATER,
                      on_close: OnClose | None = None) -> Relay:
    """Listen on ``listen_url``; for each client, connect to ``target_url`` and relay bytes
    both ways until both directions have ended. Both must be stream addresses."""
    listen_address = parse_address(listen_url) if isinstance(listen_url, str) else listen_url
    target = parse_address(target_url) if isinstance(target_url, str) else target_url
    for address in (listen_address, target):
        if is_datagram(address):
            raise UnsupportedError(f"{format_address(address)} is a datagram address; the relay "
                                   "bridges stream addresses (tcp, tls, unix, fifo, fd)")
    relay = Relay(target, connect_options or ConnectOptions(), buffer_size, high_water, on_close)
    relay.listener = await listen(listen_address, relay._new_connection,
                                  listen_options or ListenOptions())
    return relay


__all__ = ["ConnectionReport", "Relay", "RelayStats", "start_relay"]
