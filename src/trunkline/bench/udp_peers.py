"""The two ends of ``trunkline bench udp``, run inside worker processes, raw and trunkline.

- raw: plain asyncio ``DatagramProtocol``s on uvloop (the baseline, as in ``raw.py``);
- trunkline: ``trunkline.bind_datagram`` + ``recv`` to receive, ``open_datagram`` + ``send``
  to send: what an application using trunkline writes.

The sender paces itself to ``pps`` datagrams per second (in bursts: the loop's timers tick in
milliseconds, as iperf3 sends in bursts too) or, with ``pps`` 0, sends as fast as it can,
waiting only when the socket's send buffer is full. Each datagram carries the header of
``udp_stats`` (sequence number, send time) and is padded to ``size`` bytes.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..address import UdpAddress, UnixAddress, format_address, parse_address
from .udp_stats import HEADER, HealthCounter

IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_MTU = 10, 2, 14  # linux/in.h (not in Python 3.11)
BURST = 64  # datagrams between clock checks when sending as fast as possible

Send = Callable[[bytes], Awaitable[None]]


# --------------------------------------------------------------------------- receiving


class _RawReceiver(asyncio.DatagramProtocol):
    def __init__(self, counter: HealthCounter) -> None:
        self.counter = counter

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.counter.add_datagram(data, time.monotonic_ns())


async def start_receiver(impl: str, url: str, counter: HealthCounter
                         ) -> tuple[str, Callable[[], int], Callable[[], None]]:
    """Start receiving on ``url`` into ``counter``: returns the bound URL, a function giving
    the datagrams the endpoint's own queue dropped, and a closer."""
    loop = asyncio.get_running_loop()
    address = parse_address(url)
    if impl == "trunkline":
        from ..aio.datagram import bind_datagram

        endpoint = await bind_datagram(url)
        clock = time.monotonic_ns
        add = counter.add_datagram

        async def receive() -> None:
            recv = endpoint.recv
            while True:
                data, _ = await recv()
                add(data, clock())

        task = loop.create_task(receive())

        def close() -> None:
            task.cancel()
            endpoint.close()

        return format_address(endpoint.address), lambda: endpoint.dropped, close
    if isinstance(address, UdpAddress):
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _RawReceiver(counter), local_addr=(address.host, address.port))
        host, port = transport.get_extra_info("sockname")[:2]
        return format_address(UdpAddress(host, port)), lambda: 0, transport.close
    if isinstance(address, UnixAddress) and address.datagram:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(address.sockaddr)
        transport, _ = await loop.create_datagram_endpoint(lambda: _RawReceiver(counter),
                                                           sock=sock)

        def close_unix() -> None:
            transport.close()
            if not address.abstract:
                os.unlink(address.path)

        return url, lambda: 0, close_unix
    raise ValueError(f"not a datagram address: {url}")


# --------------------------------------------------------------------------- sending


class _RawSender(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.error: Exception | None = None
        self.resumed: asyncio.Future[None] | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def error_received(self, exc: Exception) -> None:
        self.error = exc

    def pause_writing(self) -> None:
        self.resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)
        self.resumed = None


def _dont_fragment(sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)


def _path_mtu(sock: Any) -> int | None:
    try:
        return int(sock.getsockopt(socket.IPPROTO_IP, IP_MTU))
    except OSError:
        return None


@dataclass
class Sender:
    send: Send  # one datagram
    path_mtu: Callable[[], int | None]  # the kernel's path MTU now (UDP)
    close: Callable[[], Awaitable[None]]  # waits until buffered datagrams have gone out
    max_size: int  # the socket kind's own limit per datagram


async def open_sender(impl: str, url: str, dont_fragment: bool) -> Sender:
    """A connected sender to ``url``. Closing it waits for the datagrams still buffered in
    the loop: a sender that exits before then has counted datagrams nobody could receive."""
    loop = asyncio.get_running_loop()
    address = parse_address(url)
    if impl == "trunkline":
        from ..aio.datagram import open_datagram

        endpoint = await open_datagram(url)
        sock = endpoint.transport.get_extra_info("socket")
        if dont_fragment:
            _dont_fragment(sock)
        return Sender(endpoint.send, lambda: _path_mtu(sock), endpoint.aclose,
                      endpoint.max_size)
    kwargs: dict[str, Any]
    if isinstance(address, UdpAddress):
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        udp = socket.socket(family, socket.SOCK_DGRAM)
        if dont_fragment:
            _dont_fragment(udp)
        udp.connect((address.host, address.port))
        kwargs = {"sock": udp}
        max_size = 65_527 if family == socket.AF_INET6 else 65_507  # 65,535 - headers
    elif isinstance(address, UnixAddress) and address.datagram:
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        unix.connect(address.sockaddr)  # one way: the sender needs no name of its own
        kwargs = {"sock": unix}
        max_size = unix.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - 32
    else:
        raise ValueError(f"not a datagram address: {url}")
    transport, proto = await loop.create_datagram_endpoint(_RawSender, **kwargs)
    sock = transport.get_extra_info("socket")

    async def send(data: bytes) -> None:
        transport.sendto(data)
        if proto.error is not None:
            error, proto.error = proto.error, None
            raise error
        if proto.resumed is not None:
            await proto.resumed

    async def close() -> None:
        transport.close()
        await proto.closed

    return Sender(send, lambda: _path_mtu(sock), close, max_size)


async def send_paced(send: Send, size: int, pps: float, seconds: float) -> tuple[int, float]:
    """Send ``size``-byte datagrams for ``seconds`` at ``pps`` per second (0: as fast as
    possible); returns (datagrams sent, seconds from the first send to the last)."""
    clock = time.monotonic_ns
    pad = bytes(max(0, size - HEADER.size))
    pack = HEADER.pack
    start = clock()
    end = start + int(seconds * 1e9)
    seq = 0
    last = start
    if pps <= 0:
        while clock() < end:
            for _ in range(BURST):
                await send(pack(seq, clock()) + pad)
                seq += 1
            await asyncio.sleep(0)  # let the loop run its callbacks now and then
        last = clock()
    else:
        interval = 1e9 / pps
        while True:
            now = clock()
            if now >= end:
                break
            due = int((now - start) / interval) + 1
            while seq < due:
                await send(pack(seq, clock()) + pad)
                seq += 1
            last = clock()
            wait = (start + seq * interval - last) / 1e9
            if wait > 0:
                await asyncio.sleep(wait)
    return seq, (last - start) / 1e9


async def run_sender(impl: str, url: str, size: int, pps: float, seconds: float,
                     dont_fragment: bool) -> dict[str, Any]:
    """The sender worker's whole job; its result (or error) as JSON-ready data."""
    sender = await open_sender(impl, url, dont_fragment)
    try:
        try:
            sent, send_seconds = await send_paced(sender.send, size, pps, seconds)
        except OSError as exc:
            if exc.errno != errno.EMSGSIZE:
                raise
            return {"error": str(exc), "too_large": True, "path_mtu": sender.path_mtu(),
                    "max_size": sender.max_size}
    finally:
        await sender.close()
    return {"sent": sent, "send_seconds": send_seconds}


__all__ = ["Sender", "open_sender", "run_sender", "send_paced", "start_receiver"]
