"""The kernel's view of other Unix sockets, from sock_diag (``NETLINK_SOCK_DIAG``, as ``ss -x``).

Used to learn whether a unixgram peer has read what we sent it: datagrams waiting in a
peer's receive queue are charged to *our* send buffer until it reads them, and only the
peer's queue says whether it has. Two requests (see linux/unix_diag.h):

- a dump of every Unix socket of this network namespace with its name and receive queue,
  to find the socket (inode and cookie) behind a name;
- an exact query of one socket by inode and cookie: its receive queue now, or "gone".

For a datagram socket the kernel reports the length of the *first* queued datagram, so
"queued" here means "at least one datagram unread" (an empty datagram reads as 0 bytes:
callers that sent one cannot trust "empty"). Unprivileged, no capability needed; where
netlink is unavailable (some sandboxes) ``UnixDiag.available`` is False.

Names are given as Python's socket module gives source addresses: ``bytes`` with a leading
NUL for abstract names, ``str`` for paths.

Why not pyroute2 (``trunkline map`` uses it): the transport must not need an optional extra
(it takes ~0.3 s to import), and its ``DiagSocket.get_sock_stats`` only dumps (marked
work in progress), while a budget check asks about one socket by inode, many times a second.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
UDIAG_SHOW_NAME = 0x1
UDIAG_SHOW_RQLEN = 0x10
UNIX_DIAG_NAME = 0
UNIX_DIAG_RQLEN = 4
ALL_STATES = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_REQUEST = struct.Struct("=BBHIIIII")  # family, protocol, pad, states, ino, show, cookie[2]
_MESSAGE = struct.Struct("=BBBBIII")  # family, type, state, pad, ino, cookie[2]
_RTATTR = struct.Struct("=HH")
_RQLEN = struct.Struct("=II")  # receive queue, send queue

Name = str | bytes


@dataclass(frozen=True)
class SocketRef:
    """One socket as sock_diag names it: the cookie tells it from a later one that got the
    same inode number."""

    ino: int
    cookie: tuple[int, int]


def _key(raw: bytes) -> Name:
    if raw.startswith(b"\0"):
        return raw
    return os.fsdecode(raw.rstrip(b"\0"))  # path names carry their terminating NUL


class UnixDiag:
    """A netlink socket for sock_diag requests about Unix sockets (blocking, but the kernel
    answers at once: microseconds for a query, about a millisecond per thousand sockets for
    a dump)."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._seq = 0
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                       NETLINK_SOCK_DIAG)
            self._sock.settimeout(1.0)
        except OSError:
            self._sock = None

    @property
    def available(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def dump(self, wanted: set[Name] | None = None) -> dict[Name, tuple[SocketRef, bool]]:
        """Named Unix sockets (only ``wanted`` ones, if given): reference and whether at
        least one datagram or byte waits in its receive queue."""
        found: dict[Name, tuple[SocketRef, bool]] = {}
        for ref, name, queued in self._request(0, (0, 0), dump=True):
            if name is not None and (wanted is None or name in wanted):
                found[name] = (ref, queued)
        return found

    def queued(self, ref: SocketRef) -> bool | None:
        """Whether anything waits in that socket's receive queue; None if it is gone."""
        for _, _, queued in self._request(ref.ino, ref.cookie, dump=False):
            return queued
        return None

    def _request(self, ino: int, cookie: tuple[int, int], *, dump: bool
                 ) -> Iterator[tuple[SocketRef, Name | None, bool]]:
        sock = self._sock
        if sock is None:
            return
        self._seq += 1
        body = _REQUEST.pack(socket.AF_UNIX, 0, 0, ALL_STATES, ino,
                             UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN, *cookie)
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags,
                                 self._seq, 0) + body)
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _, seq, _ = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    return  # malformed: stop rather than spin
                payload = data[offset + _NLMSGHDR.size:offset + length]
                offset += (length + 3) & ~3
                if seq != self._seq:
                    continue  # an answer to an earlier request we gave up on
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    return  # the end of a dump; or for a query: ENOENT, the socket is gone
                if kind == SOCK_DIAG_BY_FAMILY:
                    yield _parse(payload)
                    if not dump:
                        return


def _parse(payload: bytes) -> tuple[SocketRef, Name | None, bool]:
    _, _, _, _, ino, cookie0, cookie1 = _MESSAGE.unpack_from(payload)
    name: Name | None = None
    queued = False
    offset = _MESSAGE.size
    while offset + _RTATTR.size <= len(payload):
        length, kind = _RTATTR.unpack_from(payload, offset)
        if length < _RTATTR.size:
            break
        value = payload[offset + _RTATTR.size:offset + length]
        if kind == UNIX_DIAG_NAME and value:
            name = _key(value)
        elif kind == UNIX_DIAG_RQLEN:
            with contextlib.suppress(struct.error):
                queued = _RQLEN.unpack_from(value)[0] > 0
        offset += (length + 3) & ~3
    return SocketRef(ino, (cookie0, cookie1)), name, queued


__all__ = ["Name", "SocketRef", "UnixDiag"]
