"""The map as rich tables (``trunkline map``'s default output), readable in 100 columns:
connections first (who talks to whom), then every socket and FIFO, then what was not seen."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .model import SocketMap
from .render import KIND_COLOURS, end_text, holders_text


def _kind(kind: str) -> Text:
    return Text(kind, style=KIND_COLOURS.get(kind, ""))


def render_tables(the_map: SocketMap) -> RenderableType:
    parts: list[RenderableType] = []
    conns = Table(title=f"Connections ({len(the_map.connections)})", box=box.SIMPLE_HEAD,
                  title_justify="left", pad_edge=False, expand=False)
    conns.add_column("kind", no_wrap=True)
    conns.add_column("client", overflow="fold", ratio=3)
    conns.add_column("", no_wrap=True)
    conns.add_column("server", overflow="fold", ratio=3)
    conns.add_column("address", overflow="fold", ratio=3)
    conns.add_column("service", overflow="fold", ratio=1)
    for c in the_map.connections:
        conns.add_row(_kind(c.kind), end_text(c.client), "→" if c.directed else "—",
                      end_text(c.server), c.address or "(unnamed)", ", ".join(c.services))
    parts.append(conns)

    socks = Table(title=f"Sockets and FIFOs ({len(the_map.sockets)})", box=box.SIMPLE_HEAD,
                  title_justify="left", pad_edge=False)
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

    for note in the_map.notes:
        parts.append(Text("note: " + note, style="yellow"))
    return Group(*parts)
