"""A datagram transport for Unix datagram sockets, on ``loop.add_reader``/``add_writer``.

Why not ``loop.create_datagram_endpoint``: uvloop (0.23, libuv's uv_udp) pads abstract
addresses to the whole 108-byte ``sun_path``, both ways. A reply sent to an autobound client
(``b"\\0a1b2c"``) goes to a different, padded name and is refused, and sources arrive with
trailing NULs. This transport behaves the same on every loop, and it also:

- reads into one preallocated buffer (``recvfrom_into``), so a read never allocates 256 KiB
  (CPython issue 85451), and reports a datagram the buffer truncated (``MSG_TRUNC``) as
  ``EMSGSIZE`` instead of delivering it cut short;
- sends an empty datagram (the loops' transports silently drop ``b""``);
- on an *unconnected* socket, reports ``EAGAIN`` (the destination's queue is full) through
  ``error_received`` at once instead of buffering: ``poll`` cannot tell when one destination
  has room again, so buffering would spin the loop, and one slow peer would hold up replies
  to all others. A *connected* socket buffers and waits for writability, which the kernel
  reports per peer;
- on an unconnected socket, bounds what each destination may hold of our send buffer
  (``reply_budget``: datagrams stay charged to the sender until read, so one peer that never
  reads would otherwise fill it and make every send fail). A send past a destination's
  budget is reported as ``PeerBacklogError`` (an ``EAGAIN``, carrying the peer) through
  ``error_received``, like a full queue. The send buffer is doubled where the system allows
  (``net.core.wmem_max``), so the largest datagram a default peer can send fits beside
  what non-reading peers may hold.

Errors from a send reach ``protocol.error_received`` synchronously, inside ``sendto``, so a
caller can raise them right away.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import socket
from typing import Any

from .reply_budget import PeerBacklogError, ReplyBudget

RECV_BUFFER = 256 * 1024  # above the default limit of 212992 - 32 bytes (net.core.wmem_default)
_MSG_TRUNC = int(socket.MSG_TRUNC)  # a plain int: IntFlag arithmetic costs ~1 us a datagram


class UnixDatagramTransport(asyncio.DatagramTransport):
    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol: asyncio.DatagramProtocol, *, connected: bool,
                 recv_size: int = RECV_BUFFER) -> None:
        super().__init__({"socket": sock, "sockname": sock.getsockname(),
                          "peername": sock.getpeername() if connected else None})
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._connected = connected
        self._budget: ReplyBudget | None = None
        if not connected:
            _raise_send_buffer(sock)
            self._budget = ReplyBudget(sock)
        self._buffer = bytearray(recv_size)
        self._view = memoryview(self._buffer)
        self._size = recv_size
        self._pending: collections.deque[bytes] = collections.deque()
        self._pending_size = 0
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._writing_paused = False
        self._reading = False
        self._closing = False
        self._closed = False
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self.resume_reading)

    # ---- reading

    def is_reading(self) -> bool:
        return self._reading

    def pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if not self._reading and not self._closing:
            self._reading = True
            self._loop.add_reader(self._fd, self._read_ready)

    def _read_ready(self) -> None:
        try:
            # MSG_TRUNC: the datagram's real length, even when the buffer cut it short
            n, addr = self._sock.recvfrom_into(self._view, 0, _MSG_TRUNC)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._protocol.error_received(exc)
            return
        if n > self._size:
            self._protocol.error_received(OSError(
                errno.EMSGSIZE, f"a datagram larger than the {self._size}-byte receive "
                "buffer arrived and was dropped (its sender raised SO_SNDBUF)"))
            return
        self._protocol.datagram_received(bytes(self._view[:n]), addr)

    # ---- writing

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing:
            return
        if self._pending:  # connected and already waiting for room: keep order
            self._queue(data)
            return
        budget = self._budget
        cost = 0
        if budget is not None and addr is not None:
            cost = budget.take(addr, len(data))
            if not cost:
                self._protocol.error_received(PeerBacklogError(addr))
                return
        try:
            if addr is None:
                self._sock.send(data)
            else:
                self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError) as exc:
            if cost:
                budget.refund(addr, cost)  # type: ignore[union-attr]
            if not self._connected or addr is not None:
                self._protocol.error_received(exc)
                return
            self._queue(data)
            self._loop.add_writer(self._fd, self._write_ready)
        except OSError as exc:
            if budget is not None and isinstance(exc, ConnectionRefusedError | FileNotFoundError):
                budget.forget(addr)  # gone, and what it held with it
            elif cost:
                budget.refund(addr, cost)  # type: ignore[union-attr]
            self._protocol.error_received(exc)
        else:
            if cost and not len(data):
                budget.sent_empty(addr)  # type: ignore[union-attr]

    def _queue(self, data: Any) -> None:
        data = bytes(data)
        self._pending.append(data)
        self._pending_size += len(data)
        if not self._writing_paused and self._pending_size > self._high:
            self._writing_paused = True
            self._protocol.pause_writing()

    def _write_ready(self) -> None:
        while self._pending:
            data = self._pending[0]
            try:
                self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
            self._pending.popleft()
            self._pending_size -= len(data)
        self._loop.remove_writer(self._fd)
        if self._writing_paused and self._pending_size <= self._low:
            self._writing_paused = False
            self._protocol.resume_writing()
        if self._closing:
            self._finish()

    def get_write_buffer_size(self) -> int:
        return self._pending_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = 64 * 1024 if high is None else high
        self._low = self._high // 4 if low is None else low

    # ---- closing

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop reading; finish once buffered datagrams (connected sockets only) are sent."""
        if self._closing:
            return
        self._closing = True
        self.pause_reading()
        if not self._pending:
            self._loop.call_soon(self._finish)

    def abort(self) -> None:
        self._pending.clear()
        self._pending_size = 0
        self._loop.remove_writer(self._fd)
        self._closing = True
        self.pause_reading()
        self._loop.call_soon(self._finish)

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._budget is not None:
            self._budget.close()
        try:
            self._protocol.connection_lost(None)
        finally:
            self._sock.close()

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]


def _raise_send_buffer(sock: socket.socket) -> None:
    """Double the send buffer if the system allows (the kernel caps it at twice
    ``net.core.wmem_max``); the largest datagram a peer with the default buffer can send
    must fit beside what non-reading peers may hold of ours."""
    size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)  # the kernel doubles it
