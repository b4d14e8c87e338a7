"""Datagram endpoints: UDP and Unix datagram sockets, one message at a time.

    async with await trunkline.open_datagram("udp://127.0.0.1:9000") as ep:
        await ep.send(b"ping")
        data, source = await ep.recv(timeout=1.0)

    async with await trunkline.bind_datagram("unixgram:///run/app.dgram") as ep:
        data, source = await ep.recv()
        await ep.send_to(b"pong", source)

Rules:
- ``open_datagram`` gives a *connected* endpoint: ``send`` goes to the peer and only the
  peer's datagrams arrive. ``bind_datagram`` gives an *unconnected* one: ``recv`` from
  anyone, ``send_to`` anyone.
- Received datagrams wait in a bounded queue (``max_queue`` datagrams and ``max_queue_bytes``
  bytes). When it is full the *oldest* datagram is dropped and counted in ``dropped``: a
  flood costs bounded memory, and a slow reader sees the freshest data, as it would after
  the kernel dropped them (UDP gives no delivery guarantee anyway). Pausing the socket
  instead is not offered by uvloop's UDP transport.
- ``send`` checks the size limit before sending (``DatagramTooLargeError`` names both), raises
  an error of that very send at once, and waits while the socket's send buffer is full.
- An error that arrives on its own (an ICMP port unreachable after a send on connected UDP)
  is raised once, by the next ``recv`` or ``send``, as ``ConnectError``.
- A datagram socket has no byte stream and no half-close: there is no ``read``/``write`` or
  ``write_eof``; each ``send`` is one message, each ``recv`` returns one.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import socket
import time
from collections.abc import AsyncIterator, Awaitable
from types import TracebackType
from typing import Any, NoReturn

from .._loop.resume import resume_now
from ..address import (
    Address,
    Identity,
    ServiceAddress,
    UdpAddress,
    UnixAddress,
    format_address,
    parse_address,
)
from ..errors import TransportError, TrunklineTimeoutError, UnsupportedError
from ..registry.ranking import Candidate
from ..trace.events import Side, Step, Tracer
from ..transport.base import ListenOptions
from ..transport.datagram import (
    DatagramSocket,
    as_datagram_address,
    bind_socket,
    create_transport,
    open_socket,
    sockaddr_for,
    source_identity,
    too_large,
    translate,
)
from .by_name import RegistryInput, dial, discover, resolver_for

DEFAULT_MAX_QUEUE = 1024  # datagrams waiting for recv()
DEFAULT_MAX_QUEUE_BYTES = 4 * 1024 * 1024  # ... and their bytes
_RETRY_FIRST, _RETRY_MAX = 0.0005, 0.05  # unixgram send_to to a full queue: poll can't tell
# With loop= given: without it, Python 3.11 calls getpid() to check the running loop, a
# system call per wait (see aio/stream.py)
_Future = asyncio.Future


class _EndpointProtocol(asyncio.DatagramProtocol):
    def __init__(self, max_queue: int, max_queue_bytes: int) -> None:
        self.queue: collections.deque[tuple[bytes, Any]] = collections.deque()
        self.queued_bytes = 0
        self.max_queue = max(1, max_queue)
        self.max_queue_bytes = max_queue_bytes
        self.dropped = 0
        self.error: OSError | None = None
        self.lost = False
        self.peer: Identity | None = None  # set for a connected endpoint
        # recv() calls waiting: done with a datagram's (data, source), or None to look again
        self.waiters: list[asyncio.Future[tuple[bytes, Any] | None]] = []
        self.write_paused = False
        self.drain_waiters: list[asyncio.Future[None]] = []
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        # A connected endpoint's datagrams all come from its peer: the item recv() returns.
        item = (data, addr) if self.peer is None else (data, self.peer)
        waiters = self.waiters
        if waiters and not self.queue:
            # The first recv() waiting takes it as its result and runs now, inside this
            # callback (_loop.resume); one that was cancelled meanwhile passes it on.
            loop = self.loop
            while waiters:
                if resume_now(loop, waiters.pop(0), item):
                    return
        queue = self.queue
        queue.append(item)
        self.queued_bytes += len(data)
        while len(queue) > self.max_queue or (
                self.queued_bytes > self.max_queue_bytes and len(queue) > 1):
            old, _ = queue.popleft()
            self.queued_bytes -= len(old)
            self.dropped += 1

    def give_back(self, waiter: asyncio.Future[tuple[bytes, Any] | None]) -> None:
        """The recv() of ``waiter`` stopped (cancelled, timed out) after a datagram was
        handed to it but before it ran: the datagram goes back to the front of the queue
        and the other waiting recv() calls look again, so nothing is lost."""
        if not waiter.done() or waiter.cancelled():
            return
        item = waiter.result()
        if item is not None:
            self.queue.appendleft(item)
            self.queued_bytes += len(item[0])
            waiters, self.waiters = self.waiters, []
            for other in waiters:
                resume_now(self.loop, other, None)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.error = exc
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake()
        self.resume_writing()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiters, self.drain_waiters = self.drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class DatagramEndpoint:
    """A datagram socket: connected (``peer`` set; ``send``) or not (``send_to``).
    ``recv`` returns ``(data, source)`` for both."""

    def __init__(self, dsock: DatagramSocket, transport: asyncio.DatagramTransport,
                 protocol: _EndpointProtocol, *, tracer: Tracer | None = None,
                 conn: int = 0, side: Side = "client") -> None:
        self.address: UdpAddress | UnixAddress = dsock.address  # bound, port 0 resolved
        self.local: Identity = dsock.local
        self.peer: Identity | None = dsock.peer
        self.max_size = dsock.max_size  # largest datagram this socket can send
        self.transport = transport
        self._protocol = protocol
        protocol.peer = self.peer
        self._dsock = dsock
        self._sock = dsock.sock
        self._family = dsock.sock.family
        self._where = format_address(self.address)
        self._peer_where = str(self.peer) if self.peer is not None else ""
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._sent: asyncio.Future[None] = self._loop.create_future()  # send()'s, done
        self._sent.set_result(None)
        self.tracer = tracer
        self.conn = conn
        self.side: Side = side

    # ---- state

    @property
    def dropped(self) -> int:
        """Datagrams dropped because the receive queue was full (oldest first)."""
        return self._protocol.dropped

    @property
    def queued(self) -> int:
        """Datagrams received and not yet returned by ``recv``."""
        return len(self._protocol.queue)

    @property
    def is_closed(self) -> bool:
        return self._closed

    # ---- receiving

    async def recv(self, timeout: float | None = None) -> tuple[bytes, Identity]:
        """The next datagram and its source. ``timeout`` (seconds) raises
        ``TrunklineTimeoutError`` when nothing arrives in time."""
        p = self._protocol
        start = time.monotonic_ns() if self.tracer is not None else 0
        item: tuple[bytes, Any] | None = None
        if not p.queue:
            if timeout is None:
                while item is None and not p.queue:  # _wait(), inlined: no coroutine
                    if p.error is not None:
                        self._raise_error()
                    if self._closed or p.lost:
                        raise self._closed_error()
                    waiter: asyncio.Future[tuple[bytes, Any] | None] = _Future(loop=self._loop)
                    p.waiters.append(waiter)
                    try:
                        item = await waiter  # handed a datagram, or None: look again
                    except BaseException:  # a cancelled recv must not leave its waiter
                        if waiter in p.waiters:
                            p.waiters.remove(waiter)
                        p.give_back(waiter)
                        raise
            else:
                item = await self._wait_for_datagram(timeout)
        elif p.error is not None:
            self._raise_error()
        if item is None:
            item = p.queue.popleft()
            p.queued_bytes -= len(item[0])
        if self.peer is None:  # unconnected: the source as an identity
            item = (item[0], source_identity(self._family, item[1]))
        if self.tracer is not None:
            self.tracer.record(Step.RECEIVE, self.side, start, self.conn, bytes=len(item[0]),
                               source=str(item[1]))
        return item

    async def _wait_for_datagram(self, timeout: float) -> tuple[bytes, Any] | None:
        try:
            async with asyncio.timeout(timeout):
                return await self._wait()
        except TimeoutError as exc:
            if isinstance(exc, TrunklineTimeoutError):
                raise
            raise TrunklineTimeoutError(f"no datagram arrived at {self._where} within "
                                        f"{timeout} s") from exc

    async def _wait(self) -> tuple[bytes, Any] | None:
        """A datagram handed over while waiting, or None once one is queued."""
        p = self._protocol
        while not p.queue:
            if p.error is not None:
                self._raise_error()
            if self._closed or p.lost:
                raise self._closed_error()
            waiter: asyncio.Future[tuple[bytes, Any] | None] = self._loop.create_future()
            p.waiters.append(waiter)
            try:
                item = await waiter
            except BaseException:  # a timed-out or cancelled recv: no waiter left behind
                if waiter in p.waiters:
                    p.waiters.remove(waiter)
                p.give_back(waiter)
                raise
            if item is not None:
                return item
        return None

    async def __aiter__(self) -> AsyncIterator[tuple[bytes, Identity]]:
        """``(data, source)`` for each datagram, until the endpoint is closed."""
        while True:
            try:
                yield await self.recv()
            except TransportError:
                if self._closed:
                    return
                raise

    # ---- sending

    def send(self, data: bytes | bytearray | memoryview) -> Awaitable[None]:
        """Send one datagram to the peer (connected endpoints only): ``await ep.send(data)``.
        Not a coroutine: the call sends (or raises) at once and returns what to await, a
        done future unless the socket's send buffer is full (then ``_drain()``)."""
        if self.peer is None:
            raise UnsupportedError(f"{self._where} is not connected to a peer: use "
                                   "send_to(data, destination), or open_datagram(url)")
        if self._send_now(data, None, self._peer_where) and self._protocol.write_paused:
            return self._drain()
        return self._sent

    async def send_to(self, data: bytes | bytearray | memoryview,
                      destination: Identity | Address | str) -> None:
        """Send one datagram to ``destination``: a source ``recv`` returned, an address or a
        URL (``udp://127.0.0.1:9000``, ``unixgram:@name``)."""
        if self.peer is not None:
            raise UnsupportedError(f"{self._where} is connected to {self.peer} and talks "
                                   "only to it: use send(data), or bind_datagram() to talk "
                                   "to many peers")
        addr = await sockaddr_for(self._family, destination)
        delay = _RETRY_FIRST
        while not self._send_now(data, addr, str(destination)):
            # A unixgram destination whose queue is full: poll() cannot say when it has room
            # again (it can only for a connected socket), so try again shortly.
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)
        if self._protocol.write_paused:
            await self._drain()

    def _send_now(self, data: bytes | bytearray | memoryview, addr: Any, where: str) -> bool:
        """Send (or buffer) one datagram: True once done; False if the destination's queue
        was full. Raises an error of this very send. A plain method: no coroutine per send."""
        if self._closed:
            raise self._closed_error()
        p = self._protocol
        if p.error is not None:
            self._raise_error()
        size = len(data)
        if size > self.max_size:
            raise too_large(size, self.max_size, self._kind())
        start = time.monotonic_ns() if self.tracer is not None else 0
        if size or self._family == socket.AF_UNIX:
            self.transport.sendto(data, addr)
        else:  # the loops' UDP transports drop empty datagrams; the socket does not
            try:
                if addr is None:
                    self._sock.send(data)
                else:
                    self._sock.sendto(data, addr)
            except OSError as exc:
                p.error = exc
        if p.error is not None:
            error, p.error = p.error, None
            if isinstance(error, BlockingIOError):
                return False
            raise translate(error, where, size, self.max_size) from error
        if self.tracer is not None:
            self.tracer.record(Step.SEND, self.side, start, self.conn, bytes=size, to=where)
        return True

    async def _drain(self) -> None:
        """Wait while the socket's send buffer is full."""
        p = self._protocol
        if p.write_paused:
            waiter = self._loop.create_future()
            p.drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in p.drain_waiters:
                    p.drain_waiters.remove(waiter)

    def write_eof(self) -> NoReturn:
        raise UnsupportedError("datagram sockets have no half-close: each send() is a whole "
                               "message; send an end marker of your own, or close()")

    # ---- errors

    def _kind(self) -> str:
        if self._family == socket.AF_UNIX:
            return "this unixgram socket (its SO_SNDBUF minus 32 bytes)"
        return "UDP over IPv6" if self._family == socket.AF_INET6 else "UDP over IPv4"

    def _raise_error(self) -> NoReturn:
        error, self._protocol.error = self._protocol.error, None
        assert error is not None
        raise translate(error, self._peer_where or self._where) from error

    def _closed_error(self) -> TransportError:
        return TransportError(errno.EBADF, f"the datagram endpoint {self._where} is closed")

    # ---- closing

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.tracer is not None:
            self.tracer.record(Step.CLOSE, self.side, time.monotonic_ns(), self.conn,
                               by=self.side)
        self.transport.close()
        self._dsock.run_cleanup()
        self._protocol._wake()

    async def wait_closed(self) -> None:
        await self._protocol.closed

    async def aclose(self) -> None:
        self.close()
        await self._protocol.closed

    async def __aenter__(self) -> DatagramEndpoint:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        peer = f" peer={self.peer}" if self.peer is not None else ""
        return f"<DatagramEndpoint {self.local}{peer}{' closed' if self._closed else ''}>"


async def _endpoint(dsock: DatagramSocket, tracer: Tracer | None, side: Side,
                    max_queue: int, max_queue_bytes: int, start: int) -> DatagramEndpoint:
    try:
        transport, protocol = await create_transport(
            dsock, lambda: _EndpointProtocol(max_queue, max_queue_bytes))
    except BaseException:
        dsock.close()
        raise
    assert isinstance(protocol, _EndpointProtocol)
    conn = 0
    if tracer is not None:
        conn = tracer.new_connection()
        family = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}.get(dsock.sock.family,
                                                                        "unix")
        tracer.record(Step.SOCKET, side, start, conn, family=family,
                      protocol=dsock.address.scheme, local=str(dsock.local))
        if dsock.peer is not None:
            tracer.record(Step.CONNECT, side, start, conn, local=str(dsock.local),
                          peer=str(dsock.peer),
                          how="datagram connect: sets the default peer, sends nothing")
    return DatagramEndpoint(dsock, transport, protocol, tracer=tracer, conn=conn, side=side)


async def open_datagram(url: str | Address, *, bind: str | Address | None = None,
                        options: ListenOptions | None = None,
                        timeout: float | None = 10.0, tracer: Tracer | None = None,
                        max_queue: int = DEFAULT_MAX_QUEUE,
                        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
                        registry: RegistryInput = None, prefer: str | None = None
                        ) -> DatagramEndpoint:
    """A datagram endpoint connected to ``url`` (udp or unixgram, or ``svc://name``: the
    service's best datagram address for this caller; ``registry``/``prefer`` as for
    ``trunkline.connect``). ``bind`` fixes the local address (``options`` apply to a bound
    socket file); by default UDP takes an ephemeral port and unixgram an autobound abstract
    name, so replies can reach it."""
    given = parse_address(url) if isinstance(url, str) else url
    if isinstance(given, ServiceAddress):
        names = resolver_for(registry)
        answer = await discover(names, given.name, prefer=prefer, datagram=True,
                                tracer=tracer)

        async def open_one(candidate: Candidate, left: float | None) -> DatagramEndpoint:
            return await open_datagram(candidate.address, bind=bind, options=options,
                                       timeout=left, tracer=tracer, max_queue=max_queue,
                                       max_queue_bytes=max_queue_bytes)

        endpoint, _ = await dial(answer, open_one, names, timeout=timeout, tracer=tracer)
        return endpoint
    address = as_datagram_address(given)
    local = as_datagram_address(bind, "bind") if bind is not None else None
    start = time.monotonic_ns()
    try:
        async with asyncio.timeout(timeout):
            dsock = await open_socket(address, bind=local, options=options)
    except TimeoutError as exc:
        if isinstance(exc, TrunklineTimeoutError):
            raise
        raise TrunklineTimeoutError(f"opening {format_address(address)} took longer than "
                                    f"{timeout} s (resolving its name)") from exc
    return await _endpoint(dsock, tracer, "client", max_queue, max_queue_bytes, start)


async def bind_datagram(url: str | Address, *, options: ListenOptions | None = None,
                        tracer: Tracer | None = None, max_queue: int = DEFAULT_MAX_QUEUE,
                        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES) -> DatagramEndpoint:
    """An unconnected datagram endpoint bound to ``url``: ``recv`` from anyone, ``send_to``
    anyone. A unixgram path gets the Unix socket hygiene (a live socket is never taken over,
    a stale one is reclaimed, a non-socket is never removed, ``options.mode`` is applied) and
    is removed on close if still ours."""
    address = as_datagram_address(url)
    start = time.monotonic_ns()
    dsock = await bind_socket(address, options)
    return await _endpoint(dsock, tracer, "server", max_queue, max_queue_bytes, start)


__all__ = ["DEFAULT_MAX_QUEUE", "DEFAULT_MAX_QUEUE_BYTES", "DatagramEndpoint", "bind_datagram",
           "open_datagram"]
