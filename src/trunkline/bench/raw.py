"""Raw baselines: echo servers and ping clients written with plain asyncio Protocols.

They run on the same loop (uvloop) and the same socket kind as trunkline, with nothing on top:
the server echoes from ``data_received``; the client writes ``size`` bytes and waits on a
future that ``data_received`` completes once ``size`` bytes are back. What trunkline adds on
top of this is what the ping-pong ratio measures.

The FIFO baseline is a bare pair of named pipes (``<path>.c2s``, ``<path>.s2c``) driven by
``loop.connect_read_pipe``/``connect_write_pipe``; a one-byte hello lets the server open its
write end once the client's read end exists.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from ..address import (
    FdAddress,
    FifoAddress,
    TcpAddress,
    UdpAddress,
    UnixAddress,
    format_address,
    parse_address,
)

Ping = Callable[[], Awaitable[None]]


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class EchoDatagramProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class PingProtocol(asyncio.Protocol):
    """Completes ``waiter`` once ``size`` more bytes have arrived."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pending = 0
        self.waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.pending += len(data)
        if self.pending >= self.size and self.waiter is not None:
            self.pending -= self.size
            waiter, self.waiter = self.waiter, None
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("server closed the connection"))


class PingDatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.waiter is not None:
            waiter, self.waiter = self.waiter, None
            waiter.set_result(None)


# --------------------------------------------------------------------------- servers


async def serve(url: str) -> tuple[str, list[Any]]:
    """Start a raw echo server on ``url``; returns the URL clients should use and the objects
    that keep it alive."""
    loop = asyncio.get_running_loop()
    address = parse_address(url)
    if isinstance(address, TcpAddress):
        server = await loop.create_server(EchoProtocol, address.host, address.port)
        host, port = server.sockets[0].getsockname()[:2]
        return format_address(TcpAddress(host, port)), [server]
    if isinstance(address, FdAddress):
        assert address.fd is not None
        sock = socket.socket(fileno=address.fd)
        server = await loop.create_server(EchoProtocol, sock=sock)
        return _sock_url(sock), [server]
    if isinstance(address, UdpAddress):
        transport, _ = await loop.create_datagram_endpoint(
            EchoDatagramProtocol, local_addr=(address.host, address.port))
        host, port = transport.get_extra_info("sockname")[:2]
        return format_address(UdpAddress(host, port)), [transport]
    if isinstance(address, UnixAddress) and address.datagram:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(address.sockaddr)
        transport, _ = await loop.create_datagram_endpoint(EchoDatagramProtocol, sock=sock)
        return url, [transport]
    if isinstance(address, UnixAddress):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(address.sockaddr)
        server = await loop.create_unix_server(EchoProtocol, sock=sock)
        return url, [server]
    if isinstance(address, FifoAddress):
        return url, await _serve_fifo_pair(address.path)
    raise ValueError(f"no raw baseline for {url}")


def _sock_url(sock: socket.socket) -> str:
    if sock.family == socket.AF_UNIX:
        name = sock.getsockname()
        if isinstance(name, bytes):
            return "unix:@" + name[1:].decode()
        return format_address(UnixAddress(name))
    host, port = sock.getsockname()[:2]
    return format_address(TcpAddress(host, port))


class _FifoEcho(asyncio.Protocol):
    """Echo for the raw FIFO pair: the first byte is the hello, which opens the way back."""

    def __init__(self, s2c: str) -> None:
        self.s2c = s2c
        self.out: asyncio.WriteTransport | None = None
        self.pending = bytearray()
        self.opening = False

    def data_received(self, data: bytes) -> None:
        if self.out is not None:
            self.out.write(data)
            return
        self.pending += data
        if not self.opening:
            self.opening = True
            asyncio.get_running_loop().create_task(self._open_out())

    async def _open_out(self) -> None:
        loop = asyncio.get_running_loop()
        fd = os.open(self.s2c, os.O_WRONLY | os.O_NONBLOCK)
        out, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(fd, "wb", 0))
        self.out = out
        out.write(bytes(self.pending))
        self.pending.clear()


async def _serve_fifo_pair(path: str) -> list[Any]:
    loop = asyncio.get_running_loop()
    c2s, s2c = path + ".c2s", path + ".s2c"
    os.mkfifo(c2s, 0o600)
    os.mkfifo(s2c, 0o600)
    # O_RDWR keeps a writer on our own read end, so it never reads EOF before the client opens.
    fd = os.open(c2s, os.O_RDWR | os.O_NONBLOCK)
    transport, _ = await loop.connect_read_pipe(lambda: _FifoEcho(s2c), os.fdopen(fd, "rb", 0))
    return [transport]


# --------------------------------------------------------------------------- clients


async def open_pinger(url: str, size: int, client_dir: str) -> Ping:
    """Connect a raw client to ``url``; the returned coroutine function does one round trip.
    ``client_dir`` holds the client's own socket file where a kind needs one (unixgram)."""
    loop = asyncio.get_running_loop()
    address = parse_address(url)
    payload = b"x" * size
    if isinstance(address, UdpAddress | UnixAddress) and (
            isinstance(address, UdpAddress) or address.datagram):
        sock_args: dict[str, Any]
        if isinstance(address, UdpAddress):
            sock_args = {"remote_addr": (address.host, address.port)}
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            # A path, not autobind: uvloop mangles autobound abstract names in sendto.
            sock.bind(os.path.join(client_dir, f"raw-client-{os.getpid()}.sock"))
            sock.connect(address.sockaddr)
            sock_args = {"sock": sock}
        dtransport, dproto = await loop.create_datagram_endpoint(PingDatagramProtocol,
                                                                 **sock_args)

        async def ping_datagram() -> None:
            waiter = loop.create_future()
            dproto.waiter = waiter
            dtransport.sendto(payload)
            await waiter

        return ping_datagram

    transport: asyncio.WriteTransport
    proto = PingProtocol(size)
    if isinstance(address, TcpAddress):
        transport, _ = await loop.create_connection(lambda: proto, address.host, address.port)
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    elif isinstance(address, UnixAddress):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address.sockaddr)
        transport, _ = await loop.create_unix_connection(lambda: proto, sock=sock)
    elif isinstance(address, FifoAddress):
        transport = await _open_fifo_pair(address.path, proto)
    else:
        raise ValueError(f"no raw baseline for {url}")

    async def ping() -> None:
        waiter = loop.create_future()
        proto.waiter = waiter
        transport.write(payload)
        await waiter

    return ping


async def _open_fifo_pair(path: str, proto: PingProtocol) -> asyncio.WriteTransport:
    loop = asyncio.get_running_loop()
    rfd = os.open(path + ".s2c", os.O_RDWR | os.O_NONBLOCK)  # reader first: server opens next
    await loop.connect_read_pipe(lambda: proto, os.fdopen(rfd, "rb", 0))
    wfd = os.open(path + ".c2s", os.O_WRONLY | os.O_NONBLOCK)
    out, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(wfd, "wb", 0))
    hello = loop.create_future()
    size, proto.size = proto.size, 1
    proto.waiter = hello
    out.write(b"h")
    await hello
    proto.size = size
    return out
