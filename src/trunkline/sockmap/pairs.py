"""Which local socket talks to which: the pairing rules, per kind.

- TCP: socket A (local L, remote R) pairs with the socket whose local is R and remote is L.
  The server is the end whose local address has a listener (exact or wildcard address).
- UDP: a connected socket pairs with the socket bound to its remote address: the one
  connected back to it, else one bound there unconnected (exact or wildcard), the server.
- Unix (stream, seqpacket, datagram): the kernel names each end's peer by inode
  (UNIX_DIAG_PEER). An accepted socket carries its listener's name, so the named end is the
  server; a datagram socket connected to another is its client. Two unnamed ends (a
  socketpair) have no direction.
- FIFO: the writer talks to the reader (/proc/PID/fdinfo says which end each process holds).
  A trunkline FIFO connection is two FIFOs, ``c2s`` and ``s2c``, in a directory named
  ``trunkline-DEV-INODE-*`` after its rendezvous FIFO: those are one connection, client to
  server, at the rendezvous' path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

from .kernel import InetRow, UnixRow, endpoint
from .model import Connection, End
from .procfs import Fifo

#: Makes the End for a socket (by id) with the given address, held by the given process (None:
#: the builder picks among the socket's holders).
EndMaker = Callable[[str, str, "int | None"], End]

_PAIR_DIR = re.compile(r"^trunkline-([0-9a-f]+)-([0-9a-f]+)-")
_GONE = frozenset({"TIME-WAIT", "LISTEN"})


def inet_id(row: InetRow) -> str:
    if row.inode:
        return f"{row.kind}:{row.inode}"
    return f"{row.kind}:0:{endpoint(row.local_ip, row.local_port)}>" \
           f"{endpoint(row.remote_ip, row.remote_port)}"


def unix_id(row: UnixRow) -> str:
    return f"{row.kind}:{row.inode}"


def _bound_at(ip: str, port: int) -> list[tuple[str, int]]:
    """The local addresses a datagram or connection to ip:port can land on."""
    return [(ip, port), ("0.0.0.0", port), ("::", port)]


def inet_connections(rows: Iterable[InetRow], end: EndMaker) -> list[Connection]:
    """Every TCP and UDP connection whose two ends are in ``rows``."""
    rows = list(rows)
    listeners = {(r.local_ip, r.local_port) for r in rows
                 if r.kind == "tcp" and r.state == "LISTEN"}
    rows = [r for r in rows if r.state not in _GONE]
    by_ends = {(r.kind, r.local_ip, r.local_port, r.remote_ip, r.remote_port): r
               for r in rows if r.remote_port}
    unconnected_udp = {(r.local_ip, r.local_port): r for r in rows
                       if r.kind == "udp" and not r.remote_port}
    seen: set[frozenset[str]] = set()
    found = []
    for a in rows:
        if not a.remote_port:
            continue
        b = by_ends.get((a.kind, a.remote_ip, a.remote_port, a.local_ip, a.local_port))
        if b is None and a.kind == "udp":
            b = next((unconnected_udp[k] for k in _bound_at(a.remote_ip, a.remote_port)
                      if k in unconnected_udp), None)
        if b is None or b is a:
            continue
        key = frozenset((inet_id(a), inet_id(b)))
        if key in seen:
            continue
        seen.add(key)
        if a.kind == "tcp":
            a_serves = any(k in listeners for k in _bound_at(a.local_ip, a.local_port))
            b_serves = any(k in listeners for k in _bound_at(b.local_ip, b.local_port))
            directed = a_serves != b_serves
            client, server = (b, a) if a_serves and not b_serves else (a, b)
        else:  # UDP: the unconnected end is the server; two connected ends have no direction
            directed = not b.remote_port
            client, server = a, b
        address = endpoint(server.local_ip, server.local_port)
        found.append(Connection(
            kind=a.kind, address=address, directed=directed,
            client=end(inet_id(client), endpoint(client.local_ip, client.local_port), None),
            server=end(inet_id(server), address, None)))
    return found


def unix_connections(rows: Iterable[UnixRow], end: EndMaker) -> list[Connection]:
    rows = list(rows)
    by_inode = {r.inode: r for r in rows}
    listening = {r.name for r in rows if r.state == "LISTEN" and r.name}
    seen: set[frozenset[int]] = set()
    found = []
    for a in rows:
        b = by_inode.get(a.peer_inode or 0)
        if b is None or b is a:
            continue
        key = frozenset((a.inode, b.inode))
        if key in seen:
            continue
        seen.add(key)
        client, server, directed = _unix_direction(a, b, listening)
        found.append(Connection(kind=a.kind, address=server.name, directed=directed,
                                client=end(unix_id(client), client.name, None),
                                server=end(unix_id(server), server.name, None)))
    return found


def _unix_direction(a: UnixRow, b: UnixRow, listening: set[str]
                    ) -> tuple[UnixRow, UnixRow, bool]:
    if a.kind == "unixgram" and b.peer_inode != a.inode:
        return a, b, True  # a connected to b; b takes datagrams from anyone
    for first, second in ((a, b), (b, a)):
        if first.name in listening and second.name not in listening:
            return second, first, True  # first was accepted by a listener of that name
    if bool(a.name) != bool(b.name):
        return (b, a, True) if a.name else (a, b, True)
    return (a, b, False) if a.name or not b.name else (b, a, False)


def fifo_connections(fifos: Iterable[Fifo], end: EndMaker) -> list[Connection]:
    fifos = list(fifos)
    by_key = {(f.dev, f.inode): f for f in fifos}
    pairs: dict[str, dict[str, Fifo]] = {}
    single = []
    for fifo in fifos:
        directory, name = os.path.split(fifo.path)
        if name in ("c2s", "s2c") and _PAIR_DIR.match(os.path.basename(directory)):
            pairs.setdefault(directory, {})[name] = fifo
        else:
            single.append(fifo)
    found = []
    for directory, pair in pairs.items():
        match = _PAIR_DIR.match(os.path.basename(directory))
        assert match is not None
        rendezvous = by_key.get((int(match.group(1), 16), int(match.group(2), 16)))
        address = rendezvous.path if rendezvous is not None else directory
        c2s, s2c = pair.get("c2s"), pair.get("s2c")
        # the client writes c2s and reads s2c; the server the other way round. Each end is
        # given with the FIFO it reads.
        client = _first(c2s, "w") or _first(s2c, "r")
        server = _first(c2s, "r") or _first(s2c, "w")
        if client is None or server is None or client == server:
            single.extend(f for f in (c2s, s2c) if f is not None)
            continue
        reads = {"client": (s2c or c2s), "server": (c2s or s2c)}
        found.append(Connection(kind="fifo", address=address,
                                client=end(_id(reads["client"]), directory, client),
                                server=end(_id(reads["server"]), address, server)))
    for fifo in single:
        writers = sorted({h.pid for h in fifo.holders if "w" in h.mode})
        readers = sorted({h.pid for h in fifo.holders if "r" in h.mode})
        for writer in writers:
            for reader in readers:
                if writer != reader:
                    found.append(Connection(kind="fifo", address=fifo.path,
                                            client=end(fifo.id, fifo.path, writer),
                                            server=end(fifo.id, fifo.path, reader)))
    return found


def _first(fifo: Fifo | None, mode: str) -> int | None:
    """The first process holding ``fifo`` with ``mode`` in its open mode."""
    if fifo is None:
        return None
    return next((h.pid for h in fifo.holders if mode in h.mode), None)


def _id(fifo: Fifo | None) -> str:
    assert fifo is not None
    return fifo.id


def fifo_state(fifo: Fifo) -> str:
    """OPEN: a writer and a reader in different processes; LISTEN: readers only (a FIFO
    server's rendezvous, held for reading and writing by itself); else WRITE-ONLY."""
    writers = {h.pid for h in fifo.holders if "w" in h.mode}
    readers = {h.pid for h in fifo.holders if "r" in h.mode}
    if any(w != r for w in writers for r in readers):
        return "OPEN"
    return "LISTEN" if readers else "WRITE-ONLY"
