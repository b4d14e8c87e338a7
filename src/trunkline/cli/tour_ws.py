"""``trunkline tour``: how the WebSocket leg (``trunkline.tour.ws_leg``) is shown."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..tour.model import Latency
from ..tour.ws_leg import WsLegResult, WsTransport
from .tour import fmt_ns


def _lat(lat: Latency | None, attr: str) -> str:
    return fmt_ns(getattr(lat, attr)) if lat is not None else "-"


def _transport(t: WsTransport) -> list[Any]:
    view = t.server_view or {}
    creds = view.get("credentials")
    saw = (f"pid {creds['pid']} uid {creds['uid']} gid {creds['gid']}" if creds
           else view.get("peer") or "-")
    about = Table.grid(padding=(0, 1))
    about.add_column(no_wrap=True)
    about.add_column(overflow="fold")
    about.add_row("  dialled", t.url)
    about.add_row("  client", f"{t.client_local or '-'} -> {t.client_peer or '-'}"
                              + (f" ({', '.join(t.extensions)})" if t.extensions else ""))
    about.add_row("  server", f"saw {saw} on {view.get('local') or '-'}")
    about.add_row("  client -> server", f"{t.client_sent} sent, {t.server_got} received, "
                                        f"{t.client_acks} acks back")
    about.add_row("  server -> client", f"{t.server_pushed} pushed, {t.client_ticks} received")
    about.add_row("  full duplex", Text(
        f"{'yes' if t.full_duplex else 'NO'}: the client had received "
        f"{t.client_ticks_before_last_send} ticks before its last send, the server "
        f"{t.server_got_before_last_push} messages before its last push",
        style="green" if t.full_duplex else "bold red"))
    about.add_row("  ping RTT", f"p50 {_lat(t.ping, 'p50_ns')}, min {_lat(t.ping, 'min_ns')}")
    about.add_row("  round trip", f"p50 {_lat(t.latency, 'p50_ns')}, "
                                  f"p99 {_lat(t.latency, 'p99_ns')}")
    parts: list[Any] = [Text(""), Text(t.title, style="bold"), about]
    if t.timeline:
        line = Table(box=None, padding=(0, 1), show_edge=False, header_style="dim")
        line.add_column("  time", justify="right", no_wrap=True)
        line.add_column("client", no_wrap=True)
        line.add_column("server", no_wrap=True)
        for event in t.timeline:
            what = Text(event.what, style="cyan" if event.side == "client" else "magenta")
            cells = (what, Text("")) if event.side == "client" else (Text(""), what)
            line.add_row(f"  +{fmt_ns(event.at_ns)}", *cells)
        parts.append(line)
    if t.error:
        parts.append(Text(f"  failed: {t.error}", style="bold red"))
    return parts


def render_ws_leg(leg: WsLegResult) -> Panel:
    """Per transport: the sockets, the messages each way, the evidence of full duplex (counts,
    and the first sends and receipts of both sides in time order), ping RTT and round trips;
    then the transports side by side."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column(overflow="fold")
    head.add_row("service on", leg.server_url or "-")
    head.add_row("app", f"pushes {leg.messages} ticks from a task of its own while it acks "
                        f"each of the client's {leg.messages} messages")
    parts: list[Any] = [head]
    for t in leg.transports:
        parts += _transport(t)
    side = Table(title="WebSocket side by side", header_style="bold")
    side.add_column("transport", no_wrap=True)
    for name in ("each way", "duplex", "ping p50", "rt p50", "rt p99"):
        side.add_column(name, justify="right", no_wrap=True)
    side.add_column("ok", no_wrap=True)
    for t in leg.transports:
        side.add_row(t.name, str(t.messages),
                     f"{t.client_ticks_before_last_send}/{t.server_got_before_last_push}",
                     _lat(t.ping, "p50_ns"), _lat(t.latency, "p50_ns"),
                     _lat(t.latency, "p99_ns"),
                     Text("yes", style="green") if t.ok else Text("FAILED", style="bold red"))
    parts += [Text(""), side,
              Text(f"duplex = ticks the client had received before its last send / messages "
                   f"the server had received before its last push; rt = {leg.rounds} "
                   f"sequential message round trips; ping = {leg.pings} pings", style="dim")]
    parts += [Text(note, style="dim") for note in leg.notes]
    if leg.error:
        parts.append(Text(f"failed: {leg.error}", style="bold red"))
    return Panel(Group(*parts), title=f"[bold]{leg.title}[/] ({leg.name})", title_align="left",
                 border_style="green" if leg.ok else "red")


__all__ = ["render_ws_leg"]
