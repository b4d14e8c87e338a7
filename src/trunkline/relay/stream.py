"""A bidirectional byte relay between stream endpoints (socat-like): addresses, or a command
per connection (``relay.exec``).

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
- ``on_data(number, up, data, offset)``, when given, sees every chunk as it is relayed (the
  CLI's ``-v``/``-x`` dump): ``up`` is client -> target, ``offset`` the chunk's first byte in
  that direction. Nothing is copied or called for it when ``on_data`` is None.
- One log line per connection at close (logger ``trunkline.relay``): both ends, bytes each
  way and duration.
- The relay is a ``ServiceHost`` (``trunkline.host``): each relayed pair is one connection
  in its registry; a graceful stop lets pairs run until both directions end or the grace
  is over, then aborts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..address import Address, format_address, is_datagram, parse_address
from ..errors import TrunklineError, UnsupportedError
from ..host import DEFAULT_SHUTDOWN_TIMEOUT, Hook, HostedServer, ServiceHost, stream_endpoint
from ..transport import ConnectOptions, Listener, ListenOptions, open_transport
from ..transport.base import ProtocolFactory, describe, peer_identity
from .exec import ExecTarget, open_exec

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
#: ``on_data(connection number, up, chunk, offset)``: a chunk as it is relayed.
OnData = Callable[[int, bool, memoryview, int], None]
#: Where a relay sends each client: an address, or a command run per connection.
Target = Address | ExecTarget


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
        on_data = self.conn.relay.on_data
        if on_data is not None:
            on_data(self.conn.number, self is self.conn.client, self._buffer[:nbytes],
                    self.count)
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
        self.process: asyncio.subprocess.Process | None = None  # an exec target's

    def side_made(self, side: _Side) -> None:
        if side is self.client:
            assert side.transport is not None
            self.client_name = describe(peer_identity(side.transport))
            self.relay.host.connections.add(self)
            self.relay.stats.accepted += 1
            self.relay.stats.active += 1
            self._task = asyncio.get_running_loop().create_task(self._open_target())

    async def _open_target(self) -> None:
        relay = self.relay
        target = _Side(self, relay.buffer_size, relay.high_water)
        target.other = self.client
        try:
            await relay.open_target(lambda: target, self)
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

    # ---- the host's stop (``trunkline.host.Connection``)

    def shutdown(self) -> None:
        """A relayed byte stream has no request boundary: it goes on until both directions
        have ended or the grace is over."""

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
        relay.host.connections.forget(self)
        if self.process is not None:
            relay.host.connections.track(asyncio.ensure_future(relay.end_process(self.process)))
        report = ConnectionReport(self.number, self.client_name, relay.target_url, up, down,
                                  time.monotonic() - self.started, self.error)
        log.info("connection %d closed: %s -> %s, %d bytes up, %d bytes down, %.3f s%s",
                 report.number, report.client, report.target, up, down, report.duration_s,
                 f" ({report.error})" if report.error else "")
        if relay.on_close is not None:
            relay.on_close(report)


class Relay(HostedServer):
    """A relay on a ``ServiceHost``: listeners on ``listen`` addresses, a connection to
    ``target`` per accepted client. Stopping lets relayed connections run until both their
    directions end or the grace is over, then aborts the rest."""

    def __init__(self, target: Target, connect_options: ConnectOptions, buffer_size: int,
                 high_water: int, on_close: OnClose | None, *,
                 listen: Sequence[Address] = (), listen_options: ListenOptions = ListenOptions(),
                 shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
                 hooks: Sequence[Hook] = (), on_data: OnData | None = None) -> None:
        self.target = target
        self.target_url = (target.url if isinstance(target, ExecTarget)
                           else format_address(target))
        self.on_data = on_data
        self.connect_options = connect_options
        self.buffer_size = buffer_size
        self.high_water = high_water
        self.on_close = on_close
        self.stats = RelayStats()
        self._numbers = itertools.count(1)
        self.host = ServiceHost(
            [stream_endpoint(a, self._new_connection, listen_options) for a in listen],
            shutdown_timeout=shutdown_timeout, hooks=hooks)

    @property
    def listener(self) -> Listener | None:
        """The first bound listener (None before binding)."""
        return self.host.listeners[0] if self.host.listeners else None

    @property
    def address(self) -> Address:
        """The first bound listening address (port 0 replaced by the real port)."""
        return self.host.addresses[0]

    @property
    def url(self) -> str:
        return format_address(self.address)

    def _new_connection(self) -> _Side:
        return _Connection(self, next(self._numbers)).client

    async def open_target(self, factory: ProtocolFactory, conn: _Connection) -> None:
        """Connect ``factory``'s protocol to the target: dial the address, or start the
        command on a socket pair (``conn.process`` is then its process)."""
        target = self.target
        if isinstance(target, ExecTarget):
            conn.process = await open_exec(target, factory)
        else:
            await open_transport(target, factory, self.connect_options)

    async def end_process(self, process: asyncio.subprocess.Process) -> None:
        """After its connection: a command that has not exited on EOF is terminated."""
        assert isinstance(self.target, ExecTarget)
        await self.target.end(process, now=self.host.connections.draining)


async def start_relay(listen_url: str | Address | Sequence[str | Address],
                      target_url: str | Address | ExecTarget, *,
                      listen_options: ListenOptions | None = None,
                      connect_options: ConnectOptions | None = None,
                      buffer_size: int = DEFAULT_BUFFER, high_water: int = DEFAULT_HIGH_WATER,
                      on_close: OnClose | None = None,
                      shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
                      hooks: Sequence[Hook] = (), on_data: OnData | None = None) -> Relay:
    """Listen on ``listen_url`` (one address or several); for each client, connect to
    ``target_url`` (or run an ``ExecTarget`` command) and relay bytes both ways until both
    directions have ended. All must be stream addresses (datagram relays:
    ``relay.datagram``). Returns the started relay."""
    urls = [listen_url] if isinstance(listen_url, str | Address) else list(listen_url)
    listen_addresses = [parse_address(u) if isinstance(u, str) else u for u in urls]
    target = parse_address(target_url) if isinstance(target_url, str) else target_url
    for address in (*listen_addresses,
                    *([] if isinstance(target, ExecTarget) else [target])):
        if is_datagram(address):
            raise UnsupportedError(f"{format_address(address)} is a datagram address; the relay "
                                   "bridges stream addresses (tcp, tls, unix, fifo, fd)")
    if not listen_addresses:
        raise UnsupportedError("start_relay() needs an address to listen on, e.g. "
                               "'tcp://127.0.0.1:0'")
    relay = Relay(target, connect_options or ConnectOptions(), buffer_size, high_water,
                  on_close, listen=listen_addresses,
                  listen_options=listen_options or ListenOptions(),
                  shutdown_timeout=shutdown_timeout, hooks=hooks, on_data=on_data)
    return await relay.start()


__all__ = ["ConnectionReport", "OnData", "Relay", "RelayStats", "Target", "start_relay"]
