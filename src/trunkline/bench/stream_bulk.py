"""Bulk throughput ends for every stream kind, raw and trunkline, run in worker processes.

One connection, one direction: a sender writes ``size`` bytes in ``CHUNK`` pieces as fast as
flow control lets it, a sink counts them and notes (CLOCK_MONOTONIC) when the last one came.

- raw: plain asyncio Protocols on uvloop, as the ping-pong baseline (``raw.py``): the sink
  counts in ``data_received``, the sender writes and waits for ``resume_writing`` when the
  transport pauses it. The FIFO baseline is one bare named pipe (``<path>.c2s``).
- trunkline: ``trunkline.serve`` with a handler that ``read``s until it has them all, and
  ``trunkline.connect`` + ``Stream.send`` (which waits for the transport to drain).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from ..address import FifoAddress, TcpAddress, UnixAddress, format_address, parse_address

CHUNK = 256 * 1024
READ_SIZE = 256 * 1024

Done = Callable[[dict[str, Any]], None]


class _Count:
    """Counts bytes; ``done`` once ``size`` have come."""

    def __init__(self, size: int, done: Done) -> None:
        self.size = size
        self.total = 0
        self.t_first = 0
        self.done = done
        self.reported = False

    def add(self, n: int) -> None:
        if self.total == 0:
            self.t_first = time.monotonic_ns()
        self.total += n
        if self.total >= self.size and not self.reported:
            self.reported = True
            self.done({"bytes": self.total, "t_first_ns": self.t_first,
                       "t_full_ns": time.monotonic_ns()})


class _RawSink(asyncio.Protocol):
    def __init__(self, count: _Count) -> None:
        self.count = count

    def data_received(self, data: bytes) -> None:
        self.count.add(len(data))


async def serve_sink(impl: str, url: str, size: int, done: Done) -> tuple[str, list[Any]]:
    """A sink on ``url`` for one connection of ``size`` bytes; returns the URL to send to and
    the objects that keep it alive. ``done`` gets the result once every byte arrived."""
    loop = asyncio.get_running_loop()
    count = _Count(size, done)
    if impl == "trunkline":
        from ..aio.servers import serve
        from ..aio.stream import Stream

        async def drain(stream: Stream) -> None:
            read = stream.read
            while count.total < size:
                data = await read(READ_SIZE)
                if not data:
                    break
                count.add(len(data))

        served = await serve(drain, url)
        return served.urls[0], [served]
    address = parse_address(url)
    if isinstance(address, TcpAddress):
        server = await loop.create_server(lambda: _RawSink(count), address.host, address.port)
        host, port = server.sockets[0].getsockname()[:2]
        return format_address(TcpAddress(host, port)), [server]
    if isinstance(address, UnixAddress):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(address.sockaddr)
        unix_server = await loop.create_unix_server(lambda: _RawSink(count), sock=sock)
        return url, [unix_server]
    if isinstance(address, FifoAddress):
        path = address.path + ".c2s"
        os.mkfifo(path, 0o600)
        # O_RDWR: a writer of our own, so the read end does not see EOF before the sender
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        transport, _ = await loop.connect_read_pipe(lambda: _RawSink(count),
                                                    os.fdopen(fd, "rb", 0))
        return url, [transport]
    raise ValueError(f"no raw bulk sink for {url}")


class _RawSender(asyncio.Protocol):
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.resumed: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[None] = loop.create_future()

    def pause_writing(self) -> None:
        self.resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)
        self.resumed = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.resume_writing()
        if not self.closed.done():
            self.closed.set_result(None)


async def send_bulk(impl: str, url: str, size: int) -> dict[str, Any]:
    """Connect to ``url``, send ``size`` bytes, close once they are out; the start time."""
    payload = memoryview(b"\xa5" * CHUNK)
    if impl == "trunkline":
        from ..aio.servers import connect

        stream = await connect(url)
        t_start = time.monotonic_ns()
        left = size
        send = stream.send
        while left > 0:
            n = min(left, CHUNK)
            await send(payload[:n] if n < CHUNK else payload)
            left -= n
        await stream.aclose()
        return {"t_start_ns": t_start, "t_sent_ns": time.monotonic_ns()}
    loop = asyncio.get_running_loop()
    address = parse_address(url)
    proto = _RawSender()
    transport: asyncio.WriteTransport
    if isinstance(address, TcpAddress):
        transport, _ = await loop.create_connection(lambda: proto, address.host, address.port)
    elif isinstance(address, UnixAddress):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address.sockaddr)
        transport, _ = await loop.create_unix_connection(lambda: proto, sock=sock)
    elif isinstance(address, FifoAddress):
        fd = os.open(address.path + ".c2s", os.O_WRONLY | os.O_NONBLOCK)
        transport, _ = await loop.connect_write_pipe(lambda: proto, os.fdopen(fd, "wb", 0))
    else:
        raise ValueError(f"no raw bulk sender for {url}")
    t_start = time.monotonic_ns()
    left = size
    while left > 0:
        n = min(left, CHUNK)
        transport.write(payload[:n] if n < CHUNK else payload)
        left -= n
        if proto.resumed is not None:
            await proto.resumed
    transport.close()  # after what is buffered has gone out
    await proto.closed
    return {"t_start_ns": t_start, "t_sent_ns": time.monotonic_ns()}


__all__ = ["CHUNK", "send_bulk", "serve_sink"]
