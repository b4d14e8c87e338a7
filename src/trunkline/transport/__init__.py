"""Open and listen for every stream socket kind through two functions.

``open_transport`` and ``listen`` dispatch on the address type to the kind's module
(tcp, unix, fifo, fd). Datagram kinds (udp, unixgram) live in ``datagram``. In a worker
process (``--workers``), ``listen`` serves the socket its supervisor bound for an address
(``bound.inherit``) instead of binding it again.
"""

from __future__ import annotations

import asyncio

from ..address import (
    Address,
    FdAddress,
    FifoAddress,
    ServiceAddress,
    TcpAddress,
    UnixAddress,
    format_address,
    is_datagram,
)
from ..errors import TrunklineTimeoutError, UnsupportedError
from ..trace.events import Tracer
from . import bound, fd, fifo, tcp, unix
from .base import ConnectOptions, Listener, ListenOptions, ProtocolFactory, check_dialable


async def open_transport(address: Address, factory: ProtocolFactory,
                         options: ConnectOptions = ConnectOptions(),
                         tracer: Tracer | None = None, conn: int = 0,
                         resolver: tcp.Resolver | None = None
                         ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """Connect to a stream address and attach a protocol from ``factory``."""
    if is_datagram(address):
        raise UnsupportedError(f"{format_address(address)} is a datagram address; use "
                               "trunkline.open_datagram() for it")
    if isinstance(address, TcpAddress):
        check_dialable(address)
    try:
        async with asyncio.timeout(options.timeout):
            if isinstance(address, TcpAddress):
                return await tcp.open_tcp(address, factory, options, tracer, conn, resolver)
            if isinstance(address, UnixAddress):
                return await unix.open_unix(address, factory, options, tracer, conn)
            if isinstance(address, FifoAddress):
                return await fifo.open_fifo(address, factory, options, tracer, conn)
            if isinstance(address, FdAddress):
                return await fd.open_fd(address, factory, options, tracer, conn)
    except TimeoutError as exc:
        if isinstance(exc, TrunklineTimeoutError):
            raise
        raise TrunklineTimeoutError(f"connecting to {format_address(address)} took longer "
                                    f"than {options.timeout} s") from exc
    if isinstance(address, ServiceAddress):
        raise UnsupportedError(f"{format_address(address)}: a service name, not a socket; "
                               "trunkline.connect, Client and websocket resolve names "
                               "(svc://, http+svc://, ws+svc://), this takes an address")
    raise UnsupportedError(f"cannot connect to {address!r}")


async def listen(address: Address, factory: ProtocolFactory,
                 options: ListenOptions = ListenOptions()) -> Listener:
    """Listen on a stream address; each accepted connection gets a protocol from ``factory``."""
    if is_datagram(address):
        raise UnsupportedError(f"{format_address(address)} is a datagram address; stream "
                               "servers cannot listen on it (serve it with a datagram handler)")
    shared = bound.take_inherited(address)
    if shared is not None:
        return await bound.listen_inherited(shared, factory, options)
    if isinstance(address, TcpAddress):
        return await tcp.listen(address, factory, options)
    if isinstance(address, UnixAddress):
        return await unix.listen(address, factory, options)
    if isinstance(address, FifoAddress):
        return await fifo.listen(address, factory, options)
    if isinstance(address, FdAddress):
        return await fd.listen(address, factory, options)
    raise UnsupportedError(f"cannot listen on {format_address(address)}")


__all__ = ["ConnectOptions", "ListenOptions", "Listener", "listen", "open_transport"]
