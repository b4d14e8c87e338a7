"""What every stream transport module provides, and the identity helpers all of them share.

Rules:
- Each kind's module offers ``open_KIND(address, protocol_factory, options, tracer)`` returning
  ``(asyncio.Transport, protocol)`` and ``listen(address, protocol_factory, options)`` returning
  a ``Listener``. Everything above (streams, HTTP, WebSocket) sits on asyncio protocols, so a
  new kind only has to produce an ``asyncio.Transport``.
- Transports that are not kernel sockets (FIFO pairs) answer ``get_extra_info`` for the keys
  ``LOCAL``, ``PEER`` and ``CREDENTIALS`` below; socket-backed ones are read from the socket.
- OSErrors are translated to ``trunkline.errors`` here, at the edge.
"""

from __future__ import annotations

import abc
import asyncio
import errno
import grp
import pwd
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..address import (
    Address,
    FifoIdentity,
    Identity,
    PeerCredentials,
    SocketIdentity,
    UnixIdentity,
)
from ..errors import TransportError

ProtocolFactory = Callable[[], asyncio.BaseProtocol]

# get_extra_info keys for transports that are not plain sockets.
LOCAL = "trunkline.local"
PEER = "trunkline.peer"
CREDENTIALS = "trunkline.credentials"
KIND = "trunkline.kind"


@dataclass(frozen=True)
class ListenOptions:
    """How to listen. Options that do not apply to a kind are ignored by it."""

    backlog: int = 1024
    mode: int = 0o600  # Unix socket / FIFO file mode, applied before the path is visible
    owner: int | str | None = None  # user (uid or name) to own the socket file
    group: int | str | None = None  # group (gid or name) to own the socket file
    allow_uids: frozenset[int] | None = None  # admit only these peer uids (Unix, FIFO)
    allow_gids: frozenset[int] | None = None  # ... or peers whose gid is listed here
    ssl: ssl.SSLContext | None = None  # server context for tls://
    reuse_port: bool = False


@dataclass(frozen=True)
class ConnectOptions:
    timeout: float | None = 10.0  # whole connect (resolve + handshakes); None waits forever
    ssl: ssl.SSLContext | None = None  # client context for tls://; None uses system defaults
    server_hostname: str | None = None  # TLS name to verify; defaults to the address's host


class Listener(abc.ABC):
    """One bound, listening address. ``address`` is the bound one (port 0 resolved)."""

    address: Address

    @abc.abstractmethod
    def close(self) -> None:
        """Stop accepting and release the address (socket files are unlinked)."""

    @abc.abstractmethod
    async def wait_closed(self) -> None: ...


# --------------------------------------------------------------------------- identities


def sock_identity(sock: socket.socket, name: Any, *, datagram: bool = False) -> Identity:
    """The identity of one end of ``sock`` given its sockname/peername."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        proto = "udp" if sock.type == socket.SOCK_DGRAM else "tcp"
        return SocketIdentity(name[0], name[1], proto)  # type: ignore[arg-type]
    if sock.family == socket.AF_UNIX:
        dgram = datagram or sock.type == socket.SOCK_DGRAM
        return unix_identity(name, datagram=dgram)
    raise ValueError(f"unsupported socket family {sock.family!r}")


def unix_identity(name: str | bytes | None, *, datagram: bool = False) -> UnixIdentity:
    if isinstance(name, bytes):
        if name.startswith(b"\0"):
            return UnixIdentity(name[1:].decode("utf-8", "surrogateescape"), True, datagram)
        name = name.decode("utf-8", "surrogateescape")
    return UnixIdentity(name or "", False, datagram)


def local_identity(transport: asyncio.BaseTransport) -> Identity:
    known = transport.get_extra_info(LOCAL)
    if known is not None:
        return known  # type: ignore[no-any-return]
    sock = transport.get_extra_info("socket")
    return sock_identity(sock, sock.getsockname())


def peer_identity(transport: asyncio.BaseTransport) -> Identity | None:
    known = transport.get_extra_info(PEER)
    if known is not None:
        return known  # type: ignore[no-any-return]
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        return sock_identity(sock, sock.getpeername())
    except OSError:
        return None


_UCRED = struct.Struct("3i")


def socket_peer_credentials(sock: socket.socket) -> PeerCredentials:
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                  _UCRED.size))
    return PeerCredentials(pid, uid, gid)


def peer_credentials(transport: asyncio.BaseTransport) -> PeerCredentials | None:
    """The peer process of a local connection; None for IP sockets."""
    known = transport.get_extra_info(CREDENTIALS)
    if known is not None:
        return known  # type: ignore[no-any-return]
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    return socket_peer_credentials(sock)


def file_owner(options: ListenOptions) -> tuple[int, int]:
    """The (uid, gid) a socket or FIFO file is given from ``options.owner``/``group``, as
    ``os.chown`` takes them (-1: leave as is). Names are looked up here, before any file
    exists, so a bad name leaves nothing behind."""
    return _uid(options.owner), _gid(options.group)


def _uid(owner: int | str | None) -> int:
    if owner is None:
        return -1
    if isinstance(owner, int):
        return owner
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise TransportError(errno.EINVAL, f"owner {owner!r} is not a known user; give a user "
                             "name or a numeric uid") from None


def _gid(group: int | str | None) -> int:
    if group is None:
        return -1
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise TransportError(errno.EINVAL, f"group {group!r} is not a known group; give a "
                             "group name or a numeric gid") from None


def is_admitted(creds: PeerCredentials | None, options: ListenOptions) -> bool:
    """Whether a peer passes the admit lists (no lists: everyone is admitted)."""
    if options.allow_uids is None and options.allow_gids is None:
        return True
    if creds is None:
        return False
    return (options.allow_uids is not None and creds.uid in options.allow_uids) or (
        options.allow_gids is not None and creds.gid in options.allow_gids
    )


class AdmitGate(asyncio.Protocol):
    """Checks a new connection's peer credentials, then hands the transport to the real
    protocol (``set_protocol``), so the check costs nothing once the connection is admitted."""

    def __init__(self, factory: ProtocolFactory, options: ListenOptions) -> None:
        self._factory = factory
        self._options = options

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not is_admitted(peer_credentials(transport), self._options):
            transport.abort()  # type: ignore[attr-defined]
            return
        inner = self._factory()
        transport.set_protocol(inner)
        inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        pass


def describe(identity: Identity | None) -> str:
    return "?" if identity is None else str(identity)


__all__ = [
    "CREDENTIALS", "KIND", "LOCAL", "PEER", "AdmitGate", "ConnectOptions", "FifoIdentity",
    "ListenOptions", "Listener", "ProtocolFactory", "describe", "is_admitted", "local_identity",
    "peer_credentials", "peer_identity", "sock_identity", "socket_peer_credentials",
    "unix_identity",
]
