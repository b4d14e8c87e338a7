"""TCP and TLS-over-TCP, IPv4 and IPv6, TCP_NODELAY on every connection.

Name resolution goes through the loop's resolver (or one passed in) and is timed as its own
step, so a trace shows DNS, the TCP handshake and the TLS handshake separately.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable

from ..address import TcpAddress, format_address, format_hostport
from ..errors import (
    AddressInUseError,
    ConnectError,
    HandshakeError,
    ResolveError,
    TransportError,
    os_error_words,
)
from ..trace.events import Step, Tracer
from .base import ConnectOptions, Listener, ListenOptions, ProtocolFactory

#: (host, port) -> list of (family, sockaddr). Replaceable, e.g. by a resolver that asks a
#: given DNS server.
Resolver = Callable[[str, int], Awaitable[list[tuple[int, tuple[str, int]]]]]


async def system_resolve(host: str, port: int) -> list[tuple[int, tuple[str, int]]]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ResolveError(f"could not resolve the host name {host!r}: "
                           f"{os_error_words(exc)}") from exc
    return [(family, sockaddr[:2]) for family, _, _, _, sockaddr in infos]  # type: ignore[misc]


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.split("%")[0])
            return True
        except OSError:
            pass
    return False


def default_client_tls_context() -> ssl.SSLContext:
    """For ``tls://`` without a context of the caller's: the system's CAs, hostname checked."""
    return ssl.create_default_context()


async def open_tcp(address: TcpAddress, factory: ProtocolFactory, options: ConnectOptions,
               tracer: Tracer | None = None, conn: int = 0, resolver: Resolver | None = None
               ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    loop = asyncio.get_running_loop()
    start = time.monotonic_ns()
    if _is_ip(address.host):
        ip_family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        targets: list[tuple[int, tuple[str, int]]] = [(ip_family, (address.host, address.port))]
    else:
        resolve = resolver or system_resolve
        if tracer is not None and getattr(resolve, "records_trace", False):
            # e.g. trunkline.resolve.DnsResolver: it records RESOLVE itself, naming its server
            targets = await resolve(address.host, address.port,
                                    tracer=tracer, conn=conn)  # type: ignore[call-arg]
        else:
            targets = await resolve(address.host, address.port)
            if tracer is not None:
                tracer.record(Step.RESOLVE, "client", start, conn, host=address.host,
                              addresses=[a[0] for _, a in targets])
    errors: list[str] = []
    last_errno: int | None = None
    for family, sockaddr in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tracer is not None:
                tracer.record(Step.SOCKET, "client", time.monotonic_ns(), conn,
                              family="ipv6" if family == socket.AF_INET6 else "ipv4",
                              protocol="tcp", peer=format_hostport(sockaddr[0], sockaddr[1]))
            t_connect = time.monotonic_ns()
            await loop.sock_connect(sock, sockaddr)
            if tracer is not None:
                local = sock.getsockname()
                tracer.record(Step.CONNECT, "client", t_connect, conn,
                              local=format_hostport(local[0], local[1]),
                              peer=format_hostport(sockaddr[0], sockaddr[1]),
                              how="TCP handshake (SYN/SYN-ACK/ACK)")
        except OSError as exc:
            sock.close()
            last_errno = exc.errno
            errors.append(f"{format_hostport(sockaddr[0], sockaddr[1])}: {os_error_words(exc)}"
                          if len(targets) > 1 else os_error_words(exc))
            continue
        except BaseException:
            sock.close()
            raise
        ctx = None
        if address.tls:
            ctx = options.ssl or default_client_tls_context()
        t_tls = time.monotonic_ns()
        try:
            transport, protocol = await loop.create_connection(
                factory, sock=sock, ssl=ctx,
                server_hostname=(options.server_hostname or address.host) if ctx else None)
        except (ssl.SSLError, ConnectionError) as exc:
            sock.close()
            raise HandshakeError(f"TLS handshake with {format_hostport(address.host, address.port)}"
                                 f" failed: {exc}") from exc
        if ctx is not None and tracer is not None:
            tracer.record(Step.TLS, "client", t_tls, conn,
                          version=transport.get_extra_info("ssl_object").version())
        return transport, protocol
    raise ConnectError(last_errno, f"could not connect to {format_address(address)}: "
                       + "; ".join(errors))


class SocketListener(Listener):
    """A listener backed by an ``asyncio.Server`` with one socket."""

    def __init__(self, server: asyncio.AbstractServer, address: object,
                 on_close: Callable[[], None] | None = None) -> None:
        self.server = server
        self.address = address  # type: ignore[assignment]
        self._on_close = on_close

    def close(self) -> None:
        self.server.close()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()

    async def wait_closed(self) -> None:
        await self.server.wait_closed()


async def bind_tcp_socket(address: TcpAddress, options: ListenOptions) -> socket.socket:
    """A bound (not yet listening), non-blocking TCP socket for ``address``."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ResolveError(f"could not resolve the host name {address.host!r}: "
                           f"{os_error_words(exc)}") from exc
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if options.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == 98:
            raise AddressInUseError(exc.errno, f"{format_address(address)} is already in use "
                                    "by another socket") from exc
        raise TransportError(exc.errno, f"cannot bind {format_address(address)}: "
                             f"{os_error_words(exc)}") from exc
    return sock


def bound_tcp_address(sock: socket.socket, tls: bool) -> TcpAddress:
    """The address ``sock`` is bound to (port 0 resolved)."""
    host, port = sock.getsockname()[:2]
    return TcpAddress(host, port, tls=tls)


def check_tls(address: TcpAddress, options: ListenOptions) -> None:
    if address.tls and options.ssl is None:
        raise HandshakeError(f"{format_address(address)} needs a "
                             "certificate and key (ListenOptions.ssl, or --cert/--key)")


async def listen(address: TcpAddress, factory: ProtocolFactory, options: ListenOptions
                 ) -> SocketListener:
    loop = asyncio.get_running_loop()
    check_tls(address, options)
    sock = await bind_tcp_socket(address, options)
    try:
        server = await loop.create_server(factory, sock=sock, backlog=options.backlog,
                                          ssl=options.ssl)
    except BaseException:
        sock.close()
        raise
    return SocketListener(server, bound_tcp_address(sock, address.tls))
