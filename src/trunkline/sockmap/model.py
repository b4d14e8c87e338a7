"""The socket map as plain data: frozen dataclasses that turn into JSON-ready dicts.

Every renderer (the CLI's table, ``--json``, Mermaid, the HTML page, the dashboard) reads
these values and nothing else, so what one shows the others can show too.

Ids: a socket is ``KIND:INODE`` (``tcp:48121``); a FIFO is ``fifo:DEV:INODE`` (FIFOs live on
a filesystem, so the inode alone is not unique). A socket with no inode (TIME-WAIT) gets
``KIND:0:LOCAL>REMOTE``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: The kinds ``trunkline map`` knows, in the order tables list them.
KINDS = ("tcp", "udp", "unix", "unixgram", "unixseq", "fifo")


@dataclass(frozen=True)
class Process:
    pid: int
    name: str  # the kernel's short name (comm)
    command: str  # the command line, shortened for display
    user: str | None  # None when it could not be read
    netns: int | None  # network namespace inode; None when it could not be read
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class Holder:
    """A process holding a socket or FIFO open, through file descriptor ``fd``."""

    pid: int
    fd: int
    mode: str = ""  # FIFOs: "r", "w" or "rw" (the open flags in /proc/PID/fdinfo)


@dataclass(frozen=True)
class Socket:
    id: str
    kind: str  # one of KINDS
    family: str  # "ipv4", "ipv6", "unix", "fifo"
    state: str  # ss's names: LISTEN, ESTAB, UNCONN, TIME-WAIT...; FIFOs: LISTEN, OPEN
    local: str  # "127.0.0.1:7000", "[::1]:7000", "/run/app.sock", "@name", "" (unnamed)
    remote: str  # TCP/UDP: the remote endpoint; Unix: the peer's name; "" when none
    inode: int
    uid: int | None  # the owning user as the kernel reports it (None: not reported)
    holders: tuple[Holder, ...] = ()
    peer: str | None = None  # id of the other end, when it is in this map
    services: tuple[str, ...] = ()
    hidden: bool = False  # its holder could not be read (another user's process)

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(sorted({h.pid for h in self.holders}))

    @property
    def waiting(self) -> bool:
        """Listening (stream), or bound and unconnected (datagram): waiting for peers."""
        return self.state == "LISTEN" or (self.state == "UNCONN" and self.local != "")


@dataclass(frozen=True)
class End:
    """One end of a connection: the process holding it and the socket (or FIFO) it uses."""

    pid: int | None  # None: no process holds it (not accepted yet, closing) or hidden
    command: str
    socket: str  # socket id
    address: str  # this end's own address ("" when unnamed)


@dataclass(frozen=True)
class Connection:
    """Two local ends that talk: ``client`` reached ``server`` at ``address``.

    ``directed`` is False when the map cannot tell who connected to whom (a socketpair, two
    UDP sockets connected to each other); then ``client`` and ``server`` are just the two ends.
    For a single FIFO the client is the writer and the server the reader."""

    kind: str
    address: str
    client: End
    server: End
    directed: bool = True
    services: tuple[str, ...] = ()

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(p for p in (self.client.pid, self.server.pid) if p is not None)


@dataclass(frozen=True)
class OtherNamespace:
    """Processes of this machine whose sockets live in another network namespace: their
    sockets are not in this namespace's tables, so the map counts them and maps none."""

    netns: int
    name: str | None  # the name `ip netns` knows it by, if any
    pids: tuple[int, ...]
    sockets: int


@dataclass(frozen=True)
class SocketMap:
    netns: int  # the network namespace mapped (the caller's)
    processes: tuple[Process, ...]
    sockets: tuple[Socket, ...]
    connections: tuple[Connection, ...]
    other_namespaces: tuple[OtherNamespace, ...] = ()
    hidden_sockets: int = 0  # sockets whose holder could not be read
    unreadable_processes: int = 0  # processes whose open files could not be read
    unmapped_sockets: int = 0  # sockets of other families (netlink, packet, raw...)
    notes: tuple[str, ...] = field(default=())  # what could not be seen, and why

    def process(self, pid: int | None) -> Process | None:
        return next((p for p in self.processes if p.pid == pid), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``json.dumps`` takes it as is)."""
        data = dataclasses.asdict(self)
        for sock, raw in zip(self.sockets, data["sockets"], strict=True):
            raw["pids"] = list(sock.pids)
        return data
