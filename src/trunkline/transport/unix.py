"""Unix domain stream sockets, by path or Linux abstract name.

Socket-file hygiene, for path sockets:
- never steal a live socket: if connecting to the path succeeds, binding fails and names it;
- reclaim a stale one: a socket file whose connect is refused is unlinked and rebound;
- servers claiming paths in one directory take turns (``path_claim``: a flock on the
  directory, held from the check through bind and listen), so a socket that is bound but not
  yet listening is never taken for stale by a server starting at the same moment;
- never remove a file that is not a socket;
- the file is born with its final mode (umask around bind), so there is no moment when it is
  looser than asked; owner/group are applied right after, before listen();
- on close the file is unlinked, but only if it is still ours (same inode).
Peer credentials come from SO_PEERCRED; ``allow_uids``/``allow_gids`` admit only listed peers,
which is the only access control an abstract socket has: without lists (or
``allow_any_user``) an abstract name admits only the server's own uid (``admit_defaults``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import socket
import stat
import time
from collections.abc import AsyncIterator

from ..address import UnixAddress, format_address
from ..errors import (
    AddressInUseError,
    ConnectError,
    NotASocketError,
    TransportError,
    os_error_words,
)
from ..trace.events import Step, Tracer
from .base import (
    Admission,
    ConnectOptions,
    ListenOptions,
    ProtocolFactory,
    admit_defaults,
    file_owner,
)
from .tcp import SocketListener

log = logging.getLogger("trunkline.transport")

CLAIM_WAIT = 2.0  # seconds to wait for our turn on a directory before claiming without it


async def open_unix(address: UnixAddress, factory: ProtocolFactory, options: ConnectOptions,
               tracer: Tracer | None = None, conn: int = 0
               ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    if tracer is not None:
        tracer.record(Step.SOCKET, "client", time.monotonic_ns(), conn, family="unix")
    start = time.monotonic_ns()
    try:
        await loop.sock_connect(sock, address.sockaddr)
    except OSError as exc:
        sock.close()
        raise ConnectError(exc.errno, f"could not connect to {format_address(address)}: "
                           f"{os_error_words(exc)}") from exc
    except BaseException:
        sock.close()
        raise
    if tracer is not None:
        tracer.record(Step.CONNECT, "client", start, conn, peer=format_address(address),
                      how="Unix socket connect")
    transport, protocol = await loop.create_unix_connection(factory, sock=sock)
    return transport, protocol


@contextlib.asynccontextmanager
async def path_claim(path: str) -> AsyncIterator[None]:
    """Take turns with other servers claiming a path in the same directory.

    The turn is a ``flock`` on the directory: no lock file to leave behind, and the kernel
    releases it when its holder exits or dies, so a crash never blocks a later start. Anyone
    who can open the directory can hold it, so after ``CLAIM_WAIT`` seconds we go ahead
    without it (the in-use and stale checks still apply; only the same-moment race returns).
    """
    parent = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        fd = -1  # e.g. a directory we may enter but not read: no turns to take
    try:
        if fd >= 0 and not await _flock(fd, CLAIM_WAIT):
            log.warning("%s: another process has held the lock on %s for %.0f s; claiming "
                        "the path without it", path, parent, CLAIM_WAIT)
        yield
    finally:
        if fd >= 0:
            os.close(fd)  # releases the flock


async def _flock(fd: int, wait: float) -> bool:
    """Lock ``fd`` exclusively, polling (the loop keeps running); False if not within
    ``wait`` seconds. A filesystem that cannot lock directories counts as locked."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.002)
        except OSError:
            return True


async def bind_unix_socket(address: UnixAddress, options: ListenOptions, sock_type: int
                           ) -> socket.socket:
    """A bound Unix socket with the hygiene rules of this module applied; a stream socket
    is listening too (inside the claim: only then does it look live to a competitor)."""
    uid, gid = file_owner(options)  # before any file exists
    sock = socket.socket(socket.AF_UNIX, sock_type)
    inode: tuple[int, int] | None = None
    try:
        if address.abstract:
            _bind(sock, address)  # atomic: the kernel refuses a name that is taken
        else:
            async with path_claim(address.path):
                _clear_path(address, sock_type)
                old_umask = os.umask(0o777 & ~options.mode)
                try:
                    _bind(sock, address)
                finally:
                    os.umask(old_umask)
                st = os.lstat(address.path)
                inode = (st.st_dev, st.st_ino)
                try:
                    os.chmod(address.path, options.mode)  # umask cannot add bits (0o666/022)
                    if uid != -1 or gid != -1:
                        os.chown(address.path, uid, gid)
                except OSError as exc:
                    raise TransportError(exc.errno, f"cannot set mode/owner of "
                                         f"{address.path}: {exc.strerror}") from exc
                if sock_type == socket.SOCK_STREAM:
                    sock.listen(options.backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        if inode is not None:  # we made the file: take it away again
            unlink_if_ours(address.path, inode)
        raise
    return sock


def _bind(sock: socket.socket, address: UnixAddress) -> None:
    try:
        sock.bind(address.sockaddr)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUseError(exc.errno, f"{format_address(address)} is in use by a live "
                                    "server; stop it or choose another address") from exc
        raise TransportError(exc.errno, f"cannot bind {format_address(address)}: "
                             f"{os_error_words(exc)}") from exc


def _clear_path(address: UnixAddress, sock_type: int) -> None:
    """Remove a stale socket file at the path; refuse a live socket or a non-socket."""
    try:
        st = os.lstat(address.path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise NotASocketError(errno.EEXIST, f"{address.path} exists and is not a socket; "
                              "trunkline will not remove it. Move it away or choose another path")
    probe = socket.socket(socket.AF_UNIX, sock_type)
    try:
        probe.settimeout(1.0)
        probe.connect(address.path)
    except ConnectionRefusedError:
        os.unlink(address.path)  # stale: nobody is listening
        return
    except OSError:
        pass  # e.g. EAGAIN (backlog full): somebody is there
    finally:
        probe.close()
    raise AddressInUseError(errno.EADDRINUSE, f"{format_address(address)} is in use by a live "
                            "server; stop it or choose another address")


def unlink_if_ours(path: str, inode: tuple[int, int]) -> None:
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass


async def listen(address: UnixAddress, factory: ProtocolFactory, options: ListenOptions
                 ) -> SocketListener:
    loop = asyncio.get_running_loop()
    sock = await bind_unix_socket(address, options, socket.SOCK_STREAM)
    on_close = None
    if not address.abstract:
        st = os.lstat(address.path)
        inode = (st.st_dev, st.st_ino)
        on_close = lambda: unlink_if_ours(address.path, inode)  # noqa: E731
    options = admit_defaults(options, abstract=address.abstract)
    gated: ProtocolFactory = factory
    if options.checks_peers:
        gated = Admission(options, format_address(address)).gate(factory)
    try:
        server = await loop.create_unix_server(gated, sock=sock, backlog=options.backlog)
    except BaseException:
        sock.close()
        if on_close:
            on_close()
        raise
    return SocketListener(server, address, on_close)
