"""Inherited sockets: ``fd://N`` by descriptor number, ``fd://NAME`` by systemd socket activation.

Rules:
- The socket's family and type are read from the descriptor itself (``socket(fileno=N)``):
  TCP over IPv4/IPv6 and Unix stream sockets work; datagram sockets and non-sockets are refused
  with an error that says what the descriptor is.
- From ``listen``/``open`` on, the listener (or connection) owns the descriptor and closes it
  when it closes; it is also made close-on-exec, so children we start do not keep it alive.
  One descriptor serves one listener at a time. A Unix socket's file is left alone: it belongs
  to whoever bound it (systemd removes its own).
- systemd activation (``sd_listen_fds``): ``LISTEN_PID`` must be our pid, ``LISTEN_FDS`` counts
  descriptors from 3, ``LISTEN_FDNAMES`` names them, colon-separated. ``fd://NAME`` picks the
  one descriptor with that name; ``fd://N`` needs no environment at all.
- ``listen`` wants a listening (or at least bound) stream socket; ``open`` wants a connected
  one (systemd ``Accept=yes``, a socketpair end handed to a child, ...).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..address import FdAddress, Identity, format_address
from ..errors import (
    AddressInUseError,
    ConnectError,
    NotASocketError,
    TransportError,
    UnsupportedError,
)
from ..trace.events import Step, Tracer
from .base import (
    Admission,
    ConnectOptions,
    ListenOptions,
    ProtocolFactory,
    admit_defaults,
    sock_identity,
)
from .tcp import SocketListener

#: systemd passes descriptors starting here (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3

#: Descriptors a live listener or connection of ours owns, so a second claim fails cleanly
#: instead of two socket objects closing the same number.
_claimed: set[int] = set()


@dataclass(frozen=True)
class ActivatedFd:
    """One descriptor passed by systemd (or any ``LISTEN_FDS`` socket activator)."""

    fd: int
    name: str


def systemd_fds(environ: Mapping[str, str] | None = None, pid: int | None = None
                ) -> list[ActivatedFd]:
    """The descriptors passed by socket activation, in order; empty when ``LISTEN_FDS`` is
    unset. Raises ``TransportError`` when the variables are malformed or meant for another
    process (``LISTEN_PID`` is not ``pid``, which defaults to ours)."""
    env = os.environ if environ is None else environ
    count_text = env.get("LISTEN_FDS")
    if count_text is None:
        return []
    if not count_text.isascii() or not count_text.isdigit():
        raise TransportError(f"LISTEN_FDS={count_text!r} is not a count of descriptors "
                             "(example: LISTEN_FDS=2)")
    me = os.getpid() if pid is None else pid
    pid_text = env.get("LISTEN_PID")
    if pid_text is None:
        raise TransportError("LISTEN_FDS is set but LISTEN_PID is not; a socket activator must "
                             f"set LISTEN_PID to the server's pid (ours is {me})")
    if pid_text.strip() != str(me):
        raise TransportError(f"LISTEN_PID={pid_text} is not our pid {me}: the inherited sockets "
                             "were meant for another process (an exec wrapper between systemd "
                             "and us must exec, not fork, or set LISTEN_PID=$$ before exec)")
    count = int(count_text)
    names_text = env.get("LISTEN_FDNAMES")
    names = names_text.split(":") if names_text else []
    if names and len(names) != count:
        raise TransportError(f"LISTEN_FDNAMES names {len(names)} descriptors but LISTEN_FDS is "
                             f"{count}; they must match (example: LISTEN_FDNAMES=http:admin)")
    return [ActivatedFd(LISTEN_FDS_START + i, names[i] if names else "unknown")
            for i in range(count)]


def resolve_fd(address: FdAddress, environ: Mapping[str, str] | None = None) -> int:
    """The descriptor number an ``FdAddress`` stands for (looking names up in systemd's
    ``LISTEN_FDNAMES``)."""
    if address.fd is not None:
        return address.fd
    url = format_address(address)
    passed = systemd_fds(environ)
    if not passed:
        raise TransportError(f"{url}: no sockets were passed (LISTEN_FDS is not set); start the "
                             "server from a systemd .socket unit or systemd-socket-activate, "
                             "or use fd://N with a descriptor number")
    matches = [p.fd for p in passed if p.name == address.name]
    if not matches:
        available = ", ".join(f"{p.name} (fd {p.fd})" for p in passed)
        raise TransportError(f"{url}: no inherited socket is named {address.name!r}; "
                             f"available: {available}")
    if len(matches) > 1:
        numbers = " ".join(f"fd://{n}" for n in matches)
        raise TransportError(f"{url}: {len(matches)} inherited sockets are named "
                             f"{address.name!r}; name one by number: {numbers}")
    return matches[0]


def _adopt(address: FdAddress, fd: int, error: type[TransportError]) -> socket.socket:
    """Wrap ``fd`` in a socket object, refusing what is not a stream socket we can use."""
    url = format_address(address)
    if fd in _claimed:
        raise AddressInUseError(errno.EBUSY, f"{url}: descriptor {fd} is already in use by "
                                "another trunkline listener or connection")
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        if exc.errno == errno.ENOTSOCK:
            raise NotASocketError(exc.errno, f"{url}: descriptor {fd} is not a socket "
                                  f"({_describe_fd(fd)}); pass a socket") from exc
        if exc.errno == errno.EBADF:
            raise error(exc.errno, f"{url}: descriptor {fd} is not open in this process; was "
                        "it passed to us (pass_fds, systemd, or a shell redirect)?") from exc
        raise error(exc.errno, f"{url}: cannot use descriptor {fd}: {exc.strerror}") from exc
    if sock.type != socket.SOCK_STREAM or sock.family not in (
            socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        kind = "datagram" if sock.type == socket.SOCK_DGRAM else getattr(
            sock.type, "name", str(sock.type))
        family = getattr(sock.family, "name", str(sock.family))
        sock.detach()  # leave the descriptor to whoever gave it to us
        raise UnsupportedError(f"{url}: descriptor {fd} is an {family} {kind} socket; fd:// "
                               "serves TCP or Unix stream sockets")
    return sock


def _describe_fd(fd: int) -> str:
    mode = os.fstat(fd).st_mode
    for test, what in ((stat.S_ISFIFO, "a pipe"), (stat.S_ISREG, "a regular file"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return what
    return f"file mode {mode:o}"


def _is_listening(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


def _is_connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def _is_bound(sock: socket.socket) -> bool:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return bool(name)
    return bool(name[1])


class FdListener(SocketListener):
    """A listener on an inherited socket. ``address`` is the ``FdAddress`` it was given;
    ``local`` is what the socket is actually bound to, ``fd`` the descriptor it owns."""

    def __init__(self, server: asyncio.AbstractServer, address: FdAddress, fd: int,
                 local: Identity) -> None:
        super().__init__(server, address)
        self.fd = fd
        self.local = local

    def close(self) -> None:
        _claimed.discard(self.fd)
        super().close()


async def listen(address: FdAddress, factory: ProtocolFactory, options: ListenOptions
                 ) -> FdListener:
    url = format_address(address)
    fd = resolve_fd(address)
    sock = _adopt(address, fd, TransportError)
    try:
        if not _is_listening(sock):
            if _is_connected(sock):
                raise UnsupportedError(f"{url}: descriptor {fd} is a connected socket, not a "
                                       "listening one; connect() over it instead of serving it")
            if not _is_bound(sock):
                raise UnsupportedError(f"{url}: descriptor {fd} is a socket that is not bound "
                                       "to any address; bind and listen before passing it")
            # Bound but not yet listening: asyncio's server calls listen() itself.
        local = sock_identity(sock, sock.getsockname())
        sock.setblocking(False)
        os.set_inheritable(fd, False)
        loop = asyncio.get_running_loop()
        server: asyncio.AbstractServer
        if sock.family == socket.AF_UNIX:
            name = sock.getsockname()
            options = admit_defaults(options, abstract=isinstance(name, bytes)
                                     and name.startswith(b"\0"))
            gated: ProtocolFactory = factory
            if options.checks_peers:
                gated = Admission(options, f"{url} ({local})").gate(factory)
            server = await loop.create_unix_server(gated, sock=sock, backlog=options.backlog)
        else:
            server = await loop.create_server(factory, sock=sock, backlog=options.backlog,
                                              ssl=options.ssl)
    except OSError as exc:
        sock.detach()
        if isinstance(exc, TransportError):
            raise
        raise TransportError(exc.errno, f"{url}: cannot listen on descriptor {fd}: "
                             f"{exc.strerror}") from exc
    except BaseException:
        sock.detach()
        raise
    _claimed.add(fd)
    return FdListener(server, address, fd, local)


async def open_fd(address: FdAddress, factory: ProtocolFactory, options: ConnectOptions,
               tracer: Tracer | None = None, conn: int = 0
               ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    url = format_address(address)
    start = time.monotonic_ns()
    try:
        fd = resolve_fd(address)
    except TransportError as exc:
        raise ConnectError(str(exc)) from exc
    sock = _adopt(address, fd, ConnectError)
    try:
        if _is_listening(sock):
            raise UnsupportedError(f"{url}: descriptor {fd} is a listening socket; serve it "
                                   "(trunkline.serve) instead of connecting over it")
        if not _is_connected(sock):
            raise ConnectError(errno.ENOTCONN, f"{url}: descriptor {fd} is a socket that is not "
                               "connected; pass a connected stream socket")
        sock.setblocking(False)
        os.set_inheritable(fd, False)
        loop = asyncio.get_running_loop()
        if sock.family == socket.AF_UNIX:
            transport, protocol = await loop.create_unix_connection(factory, sock=sock)
        else:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport, protocol = await loop.create_connection(factory, sock=sock)
    except BaseException:
        sock.detach()
        raise
    if tracer is not None:
        tracer.record(Step.CONNECT, "client", start, conn, peer=url,
                      how=f"inherited connected socket (fd {fd})")
    return transport, protocol


__all__ = ["LISTEN_FDS_START", "ActivatedFd", "FdListener", "resolve_fd", "systemd_fds"]
