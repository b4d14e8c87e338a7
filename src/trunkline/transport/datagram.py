"""Datagram sockets: UDP (IPv4, IPv6) and Unix datagram sockets (path or abstract name).

Rules:
- One datagram is one message: its boundaries are kept, nothing is merged or split.
- Size limits are checked before sending where we can know them: 65507 bytes of UDP payload
  over IPv4, 65527 over IPv6, and for unixgram the socket's ``SO_SNDBUF`` minus 32 bytes
  (the kernel's own check). ``EMSGSIZE`` from the kernel becomes the same
  ``DatagramTooLargeError``.
- UDP runs on the loop's datagram transport (libuv's on uvloop). unixgram runs on
  ``unixgram.UnixDatagramTransport`` on every loop (uvloop mangles abstract addresses).
- Errors of a send reach the protocol's ``error_received`` during the ``sendto`` call, so the
  caller raises them at once; errors that arrive later (an ICMP port unreachable on connected
  UDP) are raised by the next receive or send.
- A connected unixgram client must be bound to get replies: it is autobound (Linux gives it
  an abstract name) unless the caller binds it. Path sockets get the Unix stream hygiene of
  ``unix.bind_unix_socket`` and are unlinked on close only if still ours.
- Every source is an ``Identity``: ``SocketIdentity(ip, port, "udp")`` or
  ``UnixIdentity(path, abstract, datagram=True)``.
- Serving a datagram address (one handler call per datagram) is ``aio.datagram_server``;
  this module only makes sockets, names their addresses and translates their errors.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..address import (
    Address,
    Identity,
    SocketIdentity,
    UdpAddress,
    UnixAddress,
    UnixIdentity,
    format_address,
    is_datagram,
    parse_address,
)
from ..errors import (
    AddressInUseError,
    ConnectError,
    DatagramTooLargeError,
    ResolveError,
    TransportError,
    TrunklineError,
    UnsupportedError,
    os_error_words,
)
from .base import ListenOptions, check_dialable
from .unix import bind_unix_socket, unlink_if_ours
from .unixgram import UnixDatagramTransport

UDP_MAX_IPV4 = 65507  # 65535 - 20 (IPv4 header) - 8 (UDP header)
UDP_MAX_IPV6 = 65527  # 65535 (IPv6 payload length) - 8 (UDP header)
UNIX_DGRAM_OVERHEAD = 32  # unix_dgram_sendmsg refuses len > sk_sndbuf - 32


# --------------------------------------------------------------------------- sockets


@dataclass
class DatagramSocket:
    """A bound (and, with ``peer``, connected) datagram socket, before it gets a transport."""

    sock: socket.socket
    address: UdpAddress | UnixAddress  # what it is bound to, in the grammar (port resolved)
    local: Identity
    peer: Identity | None = None
    max_size: int = UDP_MAX_IPV4
    cleanup: Callable[[], None] | None = None  # unlinks our socket file, if any

    def close(self) -> None:
        self.sock.close()
        self.run_cleanup()

    def run_cleanup(self) -> None:
        if self.cleanup is not None:
            cleanup, self.cleanup = self.cleanup, None
            cleanup()


def as_datagram_address(url: str | Address, what: str = "address") -> UdpAddress | UnixAddress:
    address = parse_address(url) if isinstance(url, str) else url
    if not is_datagram(address):
        raise UnsupportedError(
            f"{format_address(address)} is a stream address, not a datagram one ({what}); "
            "use trunkline.connect()/serve() for streams, or udp://host:port, "
            "unixgram:///path or unixgram:@name here")
    return address  # type: ignore[return-value]


async def resolve_udp(host: str, port: int, *, passive: bool = False
                      ) -> tuple[int, tuple[Any, ...]]:
    """The first (family, sockaddr) for a UDP host; IP literals never touch DNS."""
    flags = socket.AI_PASSIVE if passive else 0
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM,
                                   flags=flags | socket.AI_NUMERICHOST)
    except socket.gaierror:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_DGRAM, flags=flags)
        except socket.gaierror as exc:
            raise ResolveError(f"could not resolve the host name {host!r}: "
                               f"{os_error_words(exc)}") from exc
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def _udp_max(family: int) -> int:
    return UDP_MAX_IPV6 if family == socket.AF_INET6 else UDP_MAX_IPV4


def _unix_max(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - UNIX_DGRAM_OVERHEAD


async def _bind_udp(address: UdpAddress, options: ListenOptions) -> DatagramSocket:
    family, sockaddr = await resolve_udp(address.host, address.port, passive=True)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if options.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUseError(exc.errno, f"{format_address(address)} is already in use "
                                    "by another socket; stop it or choose another port") from exc
        raise TransportError(exc.errno, f"cannot bind {format_address(address)}: "
                             f"{exc.strerror}") from exc
    name = sock.getsockname()
    return DatagramSocket(sock, UdpAddress(name[0], name[1]), SocketIdentity(name[0], name[1],
                          "udp"), max_size=_udp_max(family))


async def _bind_unix(address: UnixAddress, options: ListenOptions) -> DatagramSocket:
    sock = await bind_unix_socket(address, options, socket.SOCK_DGRAM)
    cleanup = None
    if not address.abstract:
        st = os.lstat(address.path)
        inode = (st.st_dev, st.st_ino)
        cleanup = lambda: unlink_if_ours(address.path, inode)  # noqa: E731
    local = UnixIdentity(address.path, address.abstract, True)
    return DatagramSocket(sock, address, local, max_size=_unix_max(sock), cleanup=cleanup)


async def bind_socket(address: UdpAddress | UnixAddress,
                      options: ListenOptions | None = None) -> DatagramSocket:
    """An unconnected datagram socket bound to ``address`` (port 0 picks a free port)."""
    options = options or ListenOptions()
    if isinstance(address, UdpAddress):
        return await _bind_udp(address, options)
    if options.allow_uids is not None or options.allow_gids is not None:
        raise UnsupportedError(
            f"{format_address(address)}: allow_uids/allow_gids need a connection's peer "
            "credentials (SO_PEERCRED), which datagram sockets do not have; restrict senders "
            "with the socket file's mode, owner and group instead")
    return await _bind_unix(address, options)


async def open_socket(address: UdpAddress | UnixAddress, *,
                      bind: UdpAddress | UnixAddress | None = None,
                      options: ListenOptions | None = None) -> DatagramSocket:
    """A datagram socket connected to ``address``: it sends there by default and receives
    only from there. ``bind`` fixes the local address (else an ephemeral port, or for
    unixgram an autobound abstract name, so that replies can reach it)."""
    if bind is not None and type(bind) is not type(address):
        raise UnsupportedError(f"cannot bind {format_address(bind)} to talk to "
                               f"{format_address(address)}: both must be udp or both unixgram")
    if isinstance(address, UdpAddress):
        check_dialable(address)
        family, sockaddr = await resolve_udp(address.host, address.port)
        if bind is not None:
            dsock = await bind_socket(bind, options)
            if dsock.sock.family != family:
                dsock.close()
                raise UnsupportedError(f"cannot talk to {format_address(address)} from "
                                       f"{format_address(bind)}: the IP versions differ")
        else:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            dsock = DatagramSocket(sock, address, SocketIdentity("", 0, "udp"),
                                   max_size=_udp_max(family))
        target: Any = sockaddr
    else:
        if bind is not None:
            dsock = await bind_socket(bind, options)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind("")  # Linux autobind: a unique abstract name, so replies can reach us
            dsock = DatagramSocket(sock, address, UnixIdentity("", False, True),
                                   max_size=_unix_max(sock))
        target = address.sockaddr
    try:
        dsock.sock.connect(target)
    except OSError as exc:
        dsock.close()
        raise ConnectError(exc.errno, f"could not connect to {format_address(address)}: "
                           f"{_why(exc)}") from exc
    sock = dsock.sock
    dsock.local = source_identity(sock.family, sock.getsockname())
    dsock.peer = source_identity(sock.family, sock.getpeername())
    if bind is None:
        dsock.address = _as_address(dsock.local)
    return dsock


def _why(exc: OSError) -> str:
    if exc.errno == errno.EPERM:
        return "that socket is connected to another peer and accepts datagrams only from it"
    if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
        return f"{os_error_words(exc)} (is the server running?)"
    return os_error_words(exc)


def _as_address(identity: Identity) -> UdpAddress | UnixAddress:
    if isinstance(identity, SocketIdentity):
        return UdpAddress(identity.ip, identity.port)
    assert isinstance(identity, UnixIdentity)
    return UnixAddress(identity.path, identity.abstract, True)


async def create_transport(dsock: DatagramSocket,
                           factory: Callable[[], asyncio.DatagramProtocol]
                           ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
    """Attach a protocol: the loop's transport for UDP, ours for unixgram."""
    loop = asyncio.get_running_loop()
    if dsock.sock.family == socket.AF_UNIX:
        protocol = factory()
        return UnixDatagramTransport(loop, dsock.sock, protocol,
                                     connected=dsock.peer is not None), protocol
    transport, proto = await loop.create_datagram_endpoint(factory, sock=dsock.sock)
    if hasattr(transport, "max_size"):
        # The stdlib loop reads with recvfrom(max_size), 256 KiB by default, and allocating
        # that much per read is slow (CPython issue 85451); a UDP datagram fits in 64 KiB.
        transport.max_size = 65536
    return transport, proto


# --------------------------------------------------------------------------- identities


def source_identity(family: int, addr: Any) -> Identity:
    """The identity of a datagram's source address (as ``recvfrom`` gives it)."""
    if family == socket.AF_UNIX:
        if isinstance(addr, bytes):
            if addr.startswith(b"\0"):
                return UnixIdentity(addr[1:].decode("utf-8", "surrogateescape"), True, True)
            addr = addr.decode("utf-8", "surrogateescape")
        return UnixIdentity(addr or "", False, True)
    return SocketIdentity(addr[0], addr[1], "udp")


async def sockaddr_for(family: int, dest: Identity | Address | str) -> Any:
    """Where ``sendto`` should send for a destination identity, address or URL."""
    if isinstance(dest, str):
        dest = parse_address(dest)
    if isinstance(dest, SocketIdentity | UdpAddress):
        if family == socket.AF_UNIX or (isinstance(dest, SocketIdentity)
                                        and dest.protocol != "udp"):
            raise UnsupportedError(f"cannot send to {_describe(dest)} from a unixgram socket")
        host, port = (dest.ip, dest.port) if isinstance(dest, SocketIdentity) else (
            dest.host, dest.port)
        dest_family, sockaddr = await resolve_udp(host, port)
        if dest_family != family:
            version = "IPv6" if family == socket.AF_INET6 else "IPv4"
            raise UnsupportedError(f"cannot send to {_describe(dest)} from an {version} "
                                   f"socket; bind an address of the same IP version")
        return sockaddr
    if isinstance(dest, UnixIdentity | UnixAddress):
        if family != socket.AF_UNIX:
            raise UnsupportedError(f"cannot send to {_describe(dest)} from a UDP socket")
        if not dest.path:
            raise UnsupportedError(
                "cannot reply to an unbound unixgram sender: it has no name to send to. "
                "Its socket must be bound (trunkline.open_datagram autobinds)")
        return b"\0" + dest.path.encode("utf-8", "surrogateescape") if dest.abstract else (
            dest.path)
    raise UnsupportedError(f"cannot send a datagram to {_describe(dest)}")


def _describe(dest: object) -> str:
    if isinstance(dest, UdpAddress | UnixAddress):
        return format_address(dest)
    return str(dest)


# --------------------------------------------------------------------------- errors


def too_large(size: int, limit: int, where: str) -> DatagramTooLargeError:
    return DatagramTooLargeError(
        errno.EMSGSIZE, f"datagram of {size} bytes is over the {limit}-byte limit of {where}; "
        "split it, or use a stream address for large messages")


def translate(exc: BaseException, where: str, size: int | None = None,
              limit: int | None = None) -> BaseException:
    """A kernel error on a datagram socket as a trunkline error."""
    if isinstance(exc, TrunklineError) or not isinstance(exc, OSError):
        return exc
    code = exc.errno
    if code == errno.EMSGSIZE:
        if size is not None and limit is not None:
            return too_large(size, limit, where)
        return DatagramTooLargeError(code, f"{where}: {exc.strerror or exc}")
    if code in (errno.ECONNREFUSED, errno.ENOENT, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return ConnectError(code, f"{where} refused a datagram ({exc.strerror}): nothing is "
                            "listening there, or it went away")
    if code == errno.EAGAIN:
        return TransportError(code, f"{where}: the receiver's queue is full")
    return TransportError(code, f"{where}: {exc.strerror or exc}")


__all__ = [
    "UDP_MAX_IPV4", "UDP_MAX_IPV6", "DatagramSocket", "as_datagram_address", "bind_socket",
    "create_transport", "open_socket", "sockaddr_for", "source_identity", "too_large",
    "translate",
]
