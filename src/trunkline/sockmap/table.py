"""The map as rich tables (``trunkline map``'s default output), readable in 100 columns:
connections first (who talks to whom), then every socket and FIFO, then what was not seen."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .model import End, SocketMap
from .render import KIND_COLOURS, holders_text


def _kind(kind: str) -> Text:
    return Text(kind, style=KIND_COLOURS.get(kind, ""))


def _who(the_map: SocketMap, end: End) -> str:
    """``1234 python`` for a process (its command is in the processes table), else why not."""
    if end.pid is None:
        return end.command
    proc = the_map.process(end.pid)
    return f"{end.pid} {proc.name if proc else '?'}"


def _table(title: str) -> Table:
    return Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False,
                 title_style="bold")


def render_tables(the_map: SocketMap) -> RenderableType:
    """Connections, then sockets and FIFOs, then the processes named in them, then notes."""
    parts: list[RenderableType] = []
    conns = _table(f"Connections ({len(the_map.connections)})")
    conns.add_column("kind", no_wrap=True)
    conns.add_column("client", overflow="fold", ratio=2)
    conns.add_column("", no_wrap=True)
    conns.add_column("server", overflow="fold", ratio=2)
    conns.add_column("address", overflow="fold", ratio=3)
    conns.add_column("service", overflow="fold", ratio=1)
    for c in the_map.connections:
        conns.add_row(_kind(c.kind), _who(the_map, c.client), "→" if c.directed else "—",
                      _who(the_map, c.server), c.address or "(unnamed)", ", ".join(c.services))
    parts.append(conns)

    socks = _table(f"Sockets and FIFOs ({len(the_map.sockets)})")
    socks.add_column("kind", no_wrap=True)
    socks.add_column("state", no_wrap=True)
    socks.add_column("local", overflow="fold", ratio=3)
    socks.add_column("remote / peer", overflow="fold", ratio=3)
    socks.add_column("process", overflow="fold", ratio=2)
    socks.add_column("service", overflow="fold", ratio=1)
    for s in the_map.sockets:
        socks.add_row(_kind(s.kind), s.state, s.local or "(unnamed)", s.remote,
                      holders_text(the_map, s), ", ".join(s.services))
    parts.append(socks)

    procs = _table(f"Processes ({len(the_map.processes)})")
    procs.add_column("pid", justify="right", no_wrap=True)
    procs.add_column("user", no_wrap=True)
    procs.add_column("command", overflow="fold", ratio=4)
    procs.add_column("service", overflow="fold", ratio=1)
    for p in the_map.processes:
        procs.add_row(str(p.pid), p.user or "?", p.command, ", ".join(p.services))
    parts.append(procs)

    for note in the_map.notes:
        parts.append(Text("note: " + note, style="yellow"))
    return Group(*parts)
