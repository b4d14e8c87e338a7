"""Listening sockets bound apart from serving, for servers that run in several processes.

The ``--workers`` supervisor (``trunkline.workers``) binds each address once with
``bind_listening`` and forks worker processes; each worker calls ``inherit`` with those
sockets, and from then on ``transport.listen`` serves an inherited socket instead of binding
the address again. Every worker's event loop then accepts from the same kernel socket.

Rules:
- ``bind_listening`` applies the kind's own hygiene (TCP: ``SO_REUSEADDR``; a Unix path:
  never steal a live socket, reclaim a stale one, the file born with its mode; an abstract
  name: taken atomically) and returns a ``BoundSocket`` that is already listening, so
  connections queue in the kernel while no worker is up (none is refused during a restart).
- Only kinds one socket can serve from many processes are shared (``can_share``): tcp, tls,
  unix (path and abstract). A FIFO rendezvous and datagram sockets are not (a second reader
  would split their lines or sessions); an ``fd://`` socket is already inherited as such.
- The binder owns the socket file: ``BoundSocket.close`` closes its socket and unlinks the
  path if it is still ours. A worker's listener on an inherited socket takes the worker's
  copy (one listener per socket) and closes it when it closes, so once the supervisor and
  every worker have closed theirs the kernel refuses new connections; it never unlinks.
- An inherited socket is matched by its bound URL (port 0 resolved), so a worker is given the
  bound addresses, not the ones asked for.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from ..address import Address, TcpAddress, UnixAddress, format_address
from ..errors import UnsupportedError
from .base import Admission, ListenOptions, ProtocolFactory, admit_defaults
from .tcp import SocketListener, bind_tcp_socket, bound_tcp_address, check_tls
from .unix import bind_unix_socket, unlink_if_ours


@dataclass(eq=False)
class BoundSocket:
    """A listening socket and the address it is bound to (port 0 resolved)."""

    address: TcpAddress | UnixAddress
    sock: socket.socket
    inode: tuple[int, int] | None = None  # a Unix path's socket file, to unlink if ours

    def close(self) -> None:
        """Close the socket and remove its file (if still ours). Idempotent."""
        self.sock.close()
        inode, self.inode = self.inode, None
        if inode is not None and isinstance(self.address, UnixAddress):
            unlink_if_ours(self.address.path, inode)


def can_share(address: Address) -> bool:
    """Whether one bound socket for ``address`` can be served by many processes."""
    return isinstance(address, TcpAddress) or (
        isinstance(address, UnixAddress) and not address.datagram)


async def bind_listening(address: Address, options: ListenOptions = ListenOptions()
                         ) -> BoundSocket:
    """Bind ``address`` and listen, without serving it."""
    if isinstance(address, TcpAddress):
        sock = await bind_tcp_socket(address, options)
        try:
            sock.listen(options.backlog)
        except BaseException:
            sock.close()
            raise
        return BoundSocket(bound_tcp_address(sock, address.tls), sock)
    if isinstance(address, UnixAddress) and not address.datagram:
        sock = await bind_unix_socket(address, options, socket.SOCK_STREAM)  # listening
        inode = None
        if not address.abstract:
            st = os.lstat(address.path)
            inode = (st.st_dev, st.st_ino)
        return BoundSocket(address, sock, inode)
    raise UnsupportedError(f"{format_address(address)} cannot be shared between processes; "
                           "only tcp, tls and unix stream addresses can")


async def bind_all(addresses: Sequence[Address], options: ListenOptions = ListenOptions()
                   ) -> list[BoundSocket]:
    """Bind every address in order; on a failure close the ones bound and raise."""
    bound: list[BoundSocket] = []
    try:
        for address in addresses:
            bound.append(await bind_listening(address, options))
    except BaseException:
        for done in bound:
            done.close()
        raise
    return bound


#: In a worker process: the sockets its supervisor bound, by bound URL.
_inherited: dict[str, BoundSocket] = {}


def inherit(bound: Sequence[BoundSocket]) -> None:
    """In a worker process: serve these sockets when their addresses are listened on."""
    _inherited.clear()
    for b in bound:  # without the inode: the file is the supervisor's to remove
        _inherited[format_address(b.address)] = BoundSocket(b.address, b.sock)


def take_inherited(address: Address) -> BoundSocket | None:
    """The inherited socket for ``address`` if this process was given one (and not yet
    served it): from now on the caller owns it."""
    if not _inherited:
        return None
    return _inherited.pop(format_address(address), None)


async def listen_inherited(bound: BoundSocket, factory: ProtocolFactory,
                           options: ListenOptions) -> SocketListener:
    """Serve an inherited socket; the listener owns it (closing it closes this process's
    copy, not the supervisor's or the other workers')."""
    loop = asyncio.get_running_loop()
    sock = bound.sock
    sock.setblocking(False)
    address = bound.address
    server: asyncio.AbstractServer
    try:
        if isinstance(address, TcpAddress):
            check_tls(address, options)
            server = await loop.create_server(factory, sock=sock, backlog=options.backlog,
                                              ssl=options.ssl)
        else:
            options = admit_defaults(options, abstract=address.abstract)
            gated = factory
            if options.checks_peers:
                gated = Admission(options, format_address(address)).gate(factory)
            server = await loop.create_unix_server(gated, sock=sock, backlog=options.backlog)
    except BaseException:
        sock.close()
        raise
    return SocketListener(server, address)


__all__ = ["BoundSocket", "bind_all", "bind_listening", "can_share", "inherit", "take_inherited",
           "listen_inherited"]
