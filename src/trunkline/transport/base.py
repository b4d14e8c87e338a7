"""What every stream transport module provides, and the identity helpers all of them share.

Rules:
- Each kind's module offers ``open_KIND(address, protocol_factory, options, tracer)`` returning
  ``(asyncio.Transport, protocol)`` and ``listen(address, protocol_factory, options)`` returning
  a ``Listener``. Everything above (streams, HTTP, WebSocket) sits on asyncio protocols, so a
  new kind only has to produce an ``asyncio.Transport``.
- Transports that are not kernel sockets (FIFO pairs) answer ``get_extra_info`` for the keys
  ``LOCAL``, ``PEER`` and ``CREDENTIALS`` below; socket-backed ones are read from the socket.
- OSErrors are translated to ``trunkline.errors`` here, at the edge.
- Who is admitted: peers of Unix stream sockets and FIFOs can be checked against admit lists
  (uid/gid, from SO_PEERCRED or the FIFO pair's owner). An abstract name has no file mode to
  keep other users out, so unless told otherwise it admits only the server's own uid
  (``admit_defaults``); a refused peer is logged (``Admission``, rate-limited) and its
  connection closed at once, which its client can recognise (``refusal_hint``).
"""

from __future__ import annotations

import abc
import asyncio
import errno
import grp
import logging
import os
import pwd
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..address import (
    Address,
    FifoIdentity,
    Identity,
    PeerCredentials,
    SocketIdentity,
    TcpAddress,
    UdpAddress,
    UnixIdentity,
    format_address,
)
from ..errors import AddressError, TransportError, UnsupportedError

log = logging.getLogger("trunkline.transport")

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
    # Admit lists for local peers (Unix stream sockets, FIFOs): only these uids, or peers
    # whose gid is listed. None and None: a path or FIFO admits whoever its file mode lets
    # in; an abstract name admits only the server's own uid, unless ``allow_any_user``.
    allow_uids: frozenset[int] | None = None
    allow_gids: frozenset[int] | None = None
    allow_any_user: bool = False  # abstract names: admit every local user
    ssl: ssl.SSLContext | None = None  # server context for tls://
    reuse_port: bool = False

    def __post_init__(self) -> None:
        if self.allow_any_user and (self.allow_uids is not None or self.allow_gids is not None):
            raise UnsupportedError("allow_any_user admits every local user; it cannot be "
                                   "combined with allow_uids/allow_gids, which admit only "
                                   "those listed")

    @property
    def checks_peers(self) -> bool:
        return self.allow_uids is not None or self.allow_gids is not None


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

    async def aclose(self) -> None:
        """``close``, then ``wait_closed``: as every server object stops."""
        self.close()
        await self.wait_closed()


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


def admit_defaults(options: ListenOptions, *, abstract: bool) -> ListenOptions:
    """``options`` with the default for an abstract name applied: no file mode guards it, so
    without admit lists or ``allow_any_user`` it admits only this process's uid."""
    if abstract and not options.allow_any_user and not options.checks_peers:
        return replace(options, allow_uids=frozenset({os.geteuid()}))
    return options


class RateLimitedLog:
    """Warnings at most once per ``interval`` seconds; those held back are counted in the
    next line, so a flood of refused peers cannot flood the log."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._next = 0.0
        self._held = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return
        self._next = now + self._interval
        if self._held:
            message += " (and %d more since the last such line)"
            args = (*args, self._held)
            self._held = 0
        self._logger.warning(message, *args)


def _admitted_text(options: ListenOptions) -> str:
    parts = []
    if options.allow_uids is not None:
        parts.append("uid " + ", ".join(map(str, sorted(options.allow_uids))))
    if options.allow_gids is not None:
        parts.append("gid " + ", ".join(map(str, sorted(options.allow_gids))))
    return " or ".join(parts) or "nobody"


class Admission:
    """One listener's admit check, with a rate-limited log line for each refused peer."""

    def __init__(self, options: ListenOptions, where: str) -> None:
        self.options = options
        self.where = where
        self._refusals = RateLimitedLog(log)

    def admits(self, creds: PeerCredentials | None) -> bool:
        if is_admitted(creds, self.options):
            return True
        who = "a peer without credentials" if creds is None else (
            f"pid {creds.pid}, uid {creds.uid}, gid {creds.gid}")
        self._refusals.warning(
            "%s: refused %s: not admitted (this server admits %s); widen with --allow-uid/"
            "--allow-gid (ListenOptions.allow_uids/allow_gids) or open with --allow-any-user "
            "(allow_any_user)", self.where, who, _admitted_text(self.options))
        return False

    def gate(self, factory: ProtocolFactory) -> ProtocolFactory:
        """``factory`` behind this check (it costs nothing once a connection is admitted)."""
        return lambda: AdmitGate(factory, self)


class AdmitGate(asyncio.Protocol):
    """Checks a new connection's peer credentials, then hands the transport to the real
    protocol (``set_protocol``), so the check costs nothing once the connection is admitted."""

    def __init__(self, factory: ProtocolFactory, admission: Admission) -> None:
        self._factory = factory
        self._admission = admission

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._admission.admits(peer_credentials(transport)):
            transport.abort()  # type: ignore[attr-defined]
            return
        inner = self._factory()
        transport.set_protocol(inner)
        inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        pass


def refusal_hint(transport: asyncio.BaseTransport) -> str | None:
    """For a client's new Unix socket connection: what to say if the server closes it before
    sending anything. A server of another uid that does so has, all but surely, refused this
    peer by its uid (an abstract name admits only its own uid by default). None when there
    is nothing to tell (not a Unix socket, or the same uid). Call it while connected: the
    server's credentials are gone with the socket."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    try:
        server = socket_peer_credentials(sock)
    except OSError:
        return None
    mine = os.geteuid()
    if server.uid == mine:
        return None
    return (f"the server refused this peer (its uid {mine} is not admitted: the server runs "
            f"as uid {server.uid}, pid {server.pid}, and closed the connection before sending "
            f"anything); it can admit this user with --allow-uid {mine} or --allow-any-user")


def describe(identity: Identity | None) -> str:
    return "?" if identity is None else str(identity)


__all__ = [
    "CREDENTIALS", "KIND", "LOCAL", "PEER", "AdmitGate", "Admission", "ConnectOptions",
    "FifoIdentity", "ListenOptions", "Listener", "ProtocolFactory", "RateLimitedLog",
    "admit_defaults", "describe", "is_admitted", "local_identity", "peer_credentials",
    "peer_identity", "refusal_hint", "sock_identity", "socket_peer_credentials",
    "unix_identity",
]


def check_dialable(address: TcpAddress | UdpAddress) -> None:
    """Port 0 means "any free port": a server can take it, a client cannot reach it."""
    if address.port == 0:
        url = format_address(address)
        raise AddressError(url, "port 0", "means any free port, which only a server can take; "
                           "connect to the port the server printed ('listening on ...')",
                           f"{address.scheme}://127.0.0.1:8000")
