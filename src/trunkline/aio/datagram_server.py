"""Serving a datagram address: one handler call per datagram.

Rules:
- Each datagram gets ``await handler(data, source)`` as if in its own task, at most
  ``max_inflight`` at once; beyond that datagrams are dropped and counted
  (``dropped_requests``), as the kernel drops what a full socket cannot hold. Calls run
  eagerly inside the read callback (``_loop.eager.EagerRunner``): one that finishes
  without waiting costs no task.
- Replies are best effort too: one a peer cannot take now (its queue is full, or for
  unixgram it holds its share of our send buffer unread: ``transport.reply_budget``) is
  dropped and counted (``dropped_replies``, a warning at most every 10 s), so one slow peer
  never holds up the others. UDP replies wait in the peer's buffer, not ours: the kernel
  drops what won't fit.
- Sockets, addresses and error translation come from ``transport.datagram``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._loop.eager import EagerRunner
from ..address import Address, Identity, format_address
from ..host import Endpoint
from ..trace.events import Step, Tracer
from ..transport.base import Listener, ListenOptions, RateLimitedLog
from ..transport.datagram import (
    DatagramSocket,
    as_datagram_address,
    bind_socket,
    create_transport,
    source_identity,
    too_large,
    translate,
)

log = logging.getLogger("trunkline.server")

DatagramHandler = Callable[[bytes, Identity], Awaitable[bytes | None]]

DEFAULT_MAX_INFLIGHT = 256  # handler calls running at once per served address
_SOURCES_KEPT = 1024
_BYTES_TYPES = (bytes, bytearray, memoryview)  # a tuple: "bytes | ..." builds a union per call


class _ServeProtocol(asyncio.DatagramProtocol):
    """Calls the handler for each datagram as if in its own task (at most ``max_inflight``
    waiting at once; datagrams beyond that are dropped and counted, as the kernel would drop
    them). Calls run eagerly, inside this callback (``eager``): one that finishes without
    waiting costs no task of its own."""

    def __init__(self, handler: DatagramHandler, dsock: DatagramSocket, max_inflight: int,
                 tracer: Tracer | None) -> None:
        self.handler = handler
        self.family = dsock.sock.family
        self.sock = dsock.sock
        self.max_size = dsock.max_size
        self.where = format_address(dsock.address)
        self.max_inflight = max_inflight
        self.tracer = tracer
        self.dropped_requests = 0  # not handled: max_inflight handler calls were running
        self.dropped_replies = 0  # not sent: the peer was not taking them (see error_received)
        self._drop_log = RateLimitedLog(log)
        self.transport: asyncio.DatagramTransport | None = None
        self.loop = asyncio.get_running_loop()
        self.runner = EagerRunner(self.loop)
        self.tasks = self.runner.tasks  # handler calls that are waiting, each in its task
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._warned_unnamed = False
        self._sources: dict[Any, Identity] = {}  # recent source addresses -> identities

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.runner.start()  # ready before the first datagram

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(self.tasks) >= self.max_inflight:
            self.dropped_requests += 1
            return
        self.runner.run(self._handle(data, addr,
                                     0 if self.tracer is None else time.monotonic_ns()))

    async def _handle(self, data: bytes, addr: Any, start: int) -> None:
        source = self._sources.get(addr)
        if source is None:  # identities are frozen: one per recent source will do
            source = source_identity(self.family, addr)
            if len(self._sources) >= _SOURCES_KEPT:
                self._sources.clear()
            self._sources[addr] = source
        tracer = self.tracer
        conn = 0
        if tracer is not None:  # one exchange (a datagram and its reply) is one "connection"
            conn = tracer.new_connection()
            tracer.record(Step.RECEIVE, "server", start, conn, bytes=len(data),
                          source=str(source))
        try:
            handler = self.handler  # (a plain attribute load: LOAD_METHOD on one is slow)
            reply = await handler(data, source)
        except Exception:
            log.exception("datagram handler failed for a datagram from %s", source)
            return
        transport = self.transport
        if (type(reply) is bytes and reply and addr and tracer is None
                and len(reply) <= self.max_size and transport is not None):
            # the common reply, checked at once: what the general path below checks too
            if not transport.is_closing():
                transport.sendto(reply, addr)
            return
        if reply is None or self.transport is None or self.transport.is_closing():
            return
        if not isinstance(reply, _BYTES_TYPES):
            log.error("%s: the datagram handler returned %s; it must return bytes (the reply) "
                      "or None (no reply)", self.where, type(reply).__name__)
            return
        if not addr:  # an unbound unixgram sender: nothing to reply to
            if not self._warned_unnamed:
                self._warned_unnamed = True
                log.warning("%s: dropping replies to unbound unixgram senders (they have no "
                            "name to send to; bind the client socket)", self.where)
            return
        if len(reply) > self.max_size:
            log.error("%s: reply to %s dropped: %s", self.where, source,
                      too_large(len(reply), self.max_size, self.where))
            return
        start = time.monotonic_ns() if tracer is not None else 0
        if reply or self.family == socket.AF_UNIX:
            self.transport.sendto(reply, addr)
        else:  # the loops' UDP transports drop empty datagrams; the socket does not
            with contextlib.suppress(OSError):
                self.sock.sendto(reply, addr)
        if tracer is not None:
            tracer.record(Step.SEND, "server", start, conn, bytes=len(reply), to=str(source))

    def error_received(self, exc: Exception) -> None:
        # Replies are best effort: a peer whose queue or share of our send buffer is full
        # (EAGAIN, PeerBacklogError), or that went away, loses its reply; nobody else waits.
        if isinstance(exc, BlockingIOError):
            self.dropped_replies += 1
            peer = getattr(exc, "peer", None)
            self._drop_log.warning(
                "%s: dropped a reply to %s: it is not reading its replies (its queue or its "
                "share of this socket's send buffer is full)", self.where,
                "a peer" if peer is None else source_identity(self.family, peer))
        else:
            log.debug("%s: %s", self.where, translate(exc, self.where))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class DatagramListener(Listener):
    """One served datagram address. ``close`` releases it, unlinks its socket file and
    cancels handler calls still running (their replies could not be sent anyway)."""

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _ServeProtocol,
                 dsock: DatagramSocket) -> None:
        self.address = dsock.address
        self.local = dsock.local
        self.transport = transport
        self.protocol = protocol
        self._dsock = dsock

    @property
    def dropped(self) -> int:
        """Datagrams not handled plus replies not sent."""
        return self.protocol.dropped_requests + self.protocol.dropped_replies

    @property
    def dropped_requests(self) -> int:
        """Datagrams not handled: ``max_inflight`` handler calls were running."""
        return self.protocol.dropped_requests

    @property
    def dropped_replies(self) -> int:
        """Replies not sent: the peer was not reading them (its queue, or its share of a
        unixgram socket's send buffer, was full)."""
        return self.protocol.dropped_replies

    def close(self) -> None:
        self.transport.close()
        self._dsock.run_cleanup()
        self.protocol.runner.close()

    async def wait_closed(self) -> None:
        await self.protocol.closed
        await self.protocol.runner.wait_closed()


async def serve_datagram(address: Address, handler: DatagramHandler,
                         options: ListenOptions | None = None, *,
                         tracer: Tracer | None = None,
                         max_inflight: int = DEFAULT_MAX_INFLIGHT) -> DatagramListener:
    """Bind ``address`` and call ``await handler(data, source)`` for each datagram; bytes it
    returns are sent back to the source."""
    dsock = await bind_socket(as_datagram_address(address), options)
    try:
        protocol = _ServeProtocol(handler, dsock, max_inflight, tracer)
        transport, _ = await create_transport(dsock, lambda: protocol)
    except BaseException:
        dsock.close()
        raise
    if tracer is not None:
        tracer.record(Step.SOCKET, "server", time.monotonic_ns(), 0,
                      local=str(dsock.local), protocol=dsock.address.scheme)
    return DatagramListener(transport, protocol, dsock)


def datagram_endpoint(address: Address, handler: DatagramHandler,
                      options: ListenOptions | None = None, *, tracer: Tracer | None = None,
                      max_inflight: int = DEFAULT_MAX_INFLIGHT) -> Endpoint:
    """``address`` served with ``handler``, for a ``ServiceHost`` to bind."""
    return Endpoint(address, lambda: serve_datagram(address, handler, options, tracer=tracer,
                                                    max_inflight=max_inflight))


__all__ = ["DEFAULT_MAX_INFLIGHT", "DatagramHandler", "DatagramListener", "datagram_endpoint",
           "serve_datagram"]
