"""Put the map together: kernel tables + who holds what + pairs + service labels, filtered.

``build_map`` is the one entry point (the CLI and the dashboard call it); ``assemble`` does the
work on data already read, and ``select`` applies the filters to a finished map.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from . import kernel, procfs
from .kernel import InetRow, UnixRow, endpoint
from .model import Connection, End, Holder, OtherNamespace, Socket, SocketMap
from .pairs import (
    fifo_connections,
    fifo_state,
    inet_connections,
    inet_id,
    unix_connections,
    unix_id,
)
from .services import ServiceLabels, ServiceRecord, registered_services


@dataclass(frozen=True)
class MapFilter:
    """What to keep. Empty sets keep everything."""

    pids: frozenset[int] = frozenset()
    services: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    listening: bool = False  # only sockets waiting for peers (and no connections)


def build_map(where: MapFilter | None = None,
              services: Iterable[ServiceRecord] | None = None) -> SocketMap:
    """The socket map of the caller's network namespace, as the caller may see it.

    ``services``: records to label sockets with (default: the registry's)."""
    scan = procfs.scan()  # first: the diag socket opened next is not one of ours to map
    inet, unix = kernel.read_tables()
    records = registered_services() if services is None else list(services)
    whole = assemble(scan, inet, unix, records, own_netns=procfs.own_netns(),
                     netns_names=procfs.named_netns(), euid=os.geteuid())
    return select(whole, where or MapFilter())


def assemble(scan: procfs.Scan, inet: list[InetRow], unix: list[UnixRow],
             records: Iterable[ServiceRecord], *, own_netns: int, netns_names: dict[int, str],
             euid: int) -> SocketMap:
    labels = ServiceLabels(records)
    unix_names = {r.inode: r.name for r in unix}
    # TIME-WAIT: a closed connection the kernel remembers for a while, held by no process
    time_wait = sum(1 for r in inet if r.state == "TIME-WAIT")
    inet = [r for r in inet if r.state != "TIME-WAIT"]

    def holders_of(inode: int) -> tuple[Holder, ...]:
        return tuple(scan.socket_holders.get(inode, ())) if inode else ()

    def is_hidden(inode: int, uid: int | None, held: bool) -> bool:
        # nobody we could read holds it, and someone we could not read might
        return (not held and inode != 0 and bool(scan.unreadable)
                and (uid is None or uid != euid))

    sockets: list[Socket] = []
    for row in inet:
        held = holders_of(row.inode)
        local = endpoint(row.local_ip, row.local_port)
        names = labels.for_address(row.kind, local, row.local_ip, row.local_port)
        sockets.append(Socket(
            id=inet_id(row), kind=row.kind, family=row.family, state=row.state, local=local,
            remote=endpoint(row.remote_ip, row.remote_port) if row.remote_port else "",
            inode=row.inode, uid=row.uid, holders=held,
            services=_sorted(names, *(labels.for_pid(h.pid) for h in held)),
            hidden=is_hidden(row.inode, row.uid, bool(held))))
    for urow in unix:
        held = holders_of(urow.inode)
        sockets.append(Socket(
            id=unix_id(urow), kind=urow.kind, family="unix", state=urow.state,
            local=urow.name, remote=unix_names.get(urow.peer_inode or 0, ""),
            inode=urow.inode, uid=urow.uid, holders=held,
            services=_sorted(labels.for_address(urow.kind, urow.name),
                             *(labels.for_pid(h.pid) for h in held)),
            hidden=is_hidden(urow.inode, urow.uid, bool(held))))
    for fifo in scan.fifos:
        sockets.append(Socket(
            id=fifo.id, kind="fifo", family="fifo", state=fifo_state(fifo), local=fifo.path,
            remote="", inode=fifo.inode, uid=None, holders=fifo.holders,
            services=_sorted(labels.for_address("fifo", fifo.path),
                             *(labels.for_pid(h.pid) for h in fifo.holders))))
    by_id = {s.id: s for s in sockets}

    def end(socket_id: str, address: str, pid: int | None) -> End:
        sock = by_id[socket_id]
        if pid is None and sock.holders:
            pid = max(sock.pids)  # inherited: the newest process is the one at work, mostly
        if pid is not None:
            proc = scan.processes.get(pid)
            command = proc.command if proc else "?"
        elif sock.hidden:
            command = "hidden: another user's process" + (
                f" (uid {sock.uid})" if sock.uid is not None else "")
        else:
            command = "no process (closing, or not accepted yet)"
        return End(pid=pid, command=command, socket=socket_id, address=address)

    connections = []
    inside = 0
    internal: set[str] = set()
    for conn in (inet_connections(inet, end) + unix_connections(unix, end)
                 + fifo_connections(scan.fifos, end)):
        ends = (by_id[conn.client.socket], by_id[conn.server.socket])
        if all(s.hidden for s in ends) or not conn.pids and not any(s.hidden for s in ends):
            continue  # no process we may name on either end: nothing to draw
        if conn.kind != "fifo" and not conn.address and not conn.directed and (
                conn.client.pid == conn.server.pid):
            inside += 1  # a socketpair inside one process (an event loop's wake-up pipe)
            internal.update((conn.client.socket, conn.server.socket))
            continue
        labelled = _sorted(*(s.services for s in ends),
                           labels.for_address(conn.kind, conn.address),
                           *(labels.for_pid(p) for p in conn.pids))
        connections.append(replace(conn, services=labelled))
    peers = {}
    for conn in connections:
        if conn.kind != "fifo":
            peers[conn.client.socket] = conn.server.socket
            if conn.kind in ("tcp", "unix", "unixseq") or not conn.directed:
                # a datagram server has no one peer: it answers whoever sent
                peers[conn.server.socket] = conn.client.socket
    sockets = [replace(s, peer=peers.get(s.id)) for s in sockets]

    held_by: dict[int, set[str]] = defaultdict(set)
    for sock in sockets:
        for pid in sock.pids:
            held_by[pid].update(sock.services)
    for conn in connections:
        if conn.server.pid is not None:
            held_by[conn.server.pid].update(labels.for_address(conn.kind, conn.address))
    processes = [replace(p, services=_sorted(held_by[p.pid], labels.for_pid(p.pid)))
                 for p in scan.processes.values()]

    others, unmapped = _outside_tables(scan, {s.inode for s in sockets if s.family != "fifo"},
                                       own_netns, netns_names)
    hidden = sum(1 for s in sockets if s.hidden)
    shown = [s for s in sockets if not s.hidden and s.id not in internal]
    named = ({pid for s in shown for pid in s.pids} | {p for c in connections for p in c.pids}
             | {pid for ns in others for pid in ns.pids})
    return SocketMap(
        netns=own_netns,
        processes=tuple(sorted((p for p in processes if p.pid in named), key=lambda p: p.pid)),
        sockets=tuple(sorted(shown, key=_socket_order)),
        connections=tuple(sorted(connections, key=_connection_order)),
        other_namespaces=others, hidden_sockets=hidden,
        unreadable_processes=len(scan.unreadable), unmapped_sockets=unmapped,
        notes=_notes(hidden, len(scan.unreadable), others, unmapped, inside, time_wait))


def _outside_tables(scan: procfs.Scan, mapped: set[int], own_netns: int,
                    netns_names: dict[int, str]) -> tuple[tuple[OtherNamespace, ...], int]:
    """Sockets held by processes but absent from this namespace's tables: those of processes
    in other network namespaces (grouped per namespace), and the rest (netlink, packet...)."""
    pids: dict[int, set[int]] = defaultdict(set)
    counts: dict[int, int] = defaultdict(int)
    unmapped = 0
    for inode, holders in scan.socket_holders.items():
        if inode in mapped:
            continue
        namespaces = {scan.processes[h.pid].netns for h in holders if h.pid in scan.processes}
        foreign = {ns for ns in namespaces if ns is not None and ns != own_netns}
        if not foreign:
            unmapped += 1
        for ns in foreign:
            counts[ns] += 1
            pids[ns].update(h.pid for h in holders
                            if scan.processes[h.pid].netns == ns)
    others = tuple(OtherNamespace(netns=ns, name=netns_names.get(ns),
                                  pids=tuple(sorted(pids[ns])), sockets=counts[ns])
                   for ns in sorted(counts))
    return others, unmapped


def _notes(hidden: int, unreadable: int, others: tuple[OtherNamespace, ...],
           unmapped: int, inside: int, time_wait: int) -> tuple[str, ...]:
    notes = []
    if hidden or unreadable:
        notes.append(f"{hidden} {_plural(hidden, 'socket')} of other users' processes hidden "
                     f"({unreadable} {_plural(unreadable, 'process', 'processes')} not readable, "
                     "so their FIFOs are not seen either): run as root to see them")
    for ns in others:
        where = f"network namespace {ns.name}" if ns.name else f"network namespace {ns.netns}"
        how = (f"ip netns exec {ns.name} trunkline map" if ns.name
               else f"nsenter --net=/proc/{ns.pids[0]}/ns/net trunkline map")
        notes.append(f"{ns.sockets} {_plural(ns.sockets, 'socket')} of "
                     f"{_plural(len(ns.pids), 'process', 'processes', count=True)} "
                     f"({', '.join(map(str, ns.pids))}) in {where}, not mapped here (they are "
                     f"in that namespace's tables): run `{how}` to map them")
    if unmapped:
        notes.append(f"{unmapped} {_plural(unmapped, 'socket')} of other families (netlink, "
                     "packet, raw...) not shown")
    if inside:
        notes.append(f"{inside} unnamed {_plural(inside, 'socketpair')} with both ends in one "
                     "process (event-loop wake-ups) not shown")
    if time_wait:
        notes.append(f"{time_wait} closed TCP {_plural(time_wait, 'connection')} in TIME-WAIT "
                     "(no process holds them) not listed")
    return tuple(notes)


def _plural(n: int, one: str, many: str | None = None, *, count: bool = False) -> str:
    word = one if n == 1 else (many or one + "s")
    return f"{n} {word}" if count else word


def _sorted(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({name for group in groups for name in group}))


_KIND_ORDER = {k: i for i, k in enumerate(("tcp", "udp", "unix", "unixgram", "unixseq", "fifo"))}


def _socket_order(s: Socket) -> tuple[int, bool, str, str]:
    return _KIND_ORDER.get(s.kind, 99), not s.waiting, s.local, s.remote


def _connection_order(c: Connection) -> tuple[int, str, int, str]:
    return _KIND_ORDER.get(c.kind, 99), c.address, c.client.pid or 0, c.client.address


def select(whole: SocketMap, where: MapFilter) -> SocketMap:
    """The part of ``whole`` that ``where`` keeps. A kept connection keeps both its ends'
    sockets, so asking for a service (or pid) also shows who talks to it."""
    def keep_socket(s: Socket) -> bool:
        return ((not where.kinds or s.kind in where.kinds)
                and (not where.pids or bool(where.pids & set(s.pids)))
                and (not where.services or bool(where.services & set(s.services)))
                and (not where.listening or s.waiting))

    def keep_connection(c: Connection) -> bool:
        return (not where.listening
                and (not where.kinds or c.kind in where.kinds)
                and (not where.pids or bool(where.pids & set(c.pids)))
                and (not where.services or bool(where.services & set(c.services))))

    connections = tuple(c for c in whole.connections if keep_connection(c))
    ends = {e.socket for c in connections for e in (c.client, c.server)}
    sockets = tuple(s for s in whole.sockets if keep_socket(s) or s.id in ends)
    others = tuple(ns for ns in whole.other_namespaces
                   if not where.pids or where.pids & set(ns.pids))
    if where == MapFilter():
        processes = whole.processes
    else:
        pids = ({p for s in sockets for p in s.pids} | {p for c in connections for p in c.pids}
                | {p for ns in others for p in ns.pids})
        processes = tuple(p for p in whole.processes if p.pid in pids)
    return replace(whole, processes=processes, sockets=sockets, connections=connections,
                   other_namespaces=others)
