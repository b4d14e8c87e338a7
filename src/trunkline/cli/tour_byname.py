"""``trunkline tour``: how the by-name leg (``trunkline.tour.byname_leg``) is shown."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..tour.byname_leg import ByNameLegResult, NamedCall
from .tour import fmt_ns


def _call(call: NamedCall) -> list[Any]:
    about = Table.grid(padding=(0, 1))
    about.add_column(no_wrap=True)
    about.add_column(overflow="fold")
    about.add_row("  asked for", call.url)
    about.add_row("  given", Text(f"{call.chosen or '-'}", style="bold"))
    about.add_row("  because", call.reason or "-")
    for number, place in enumerate(call.ranking[1:], 2):
        about.add_row(f"  then #{number}", place)
    for place in call.skipped:
        about.add_row("  skipped", Text(place, style="dim"))
    answer = call.answer
    if answer:
        about.add_row("  answered", f"{call.status} from {answer.get('service')} (pid "
                                    f"{answer.get('pid')}) on {answer.get('kind')} "
                                    f"{answer.get('local')}")
    timing = f"discover {fmt_ns(call.discover_ns)}, whole call {fmt_ns(call.total_ns)}"
    if call.direct_total_ns is not None:
        timing += (f"; the same call by its address {fmt_ns(call.direct_total_ns)} (a new "
                   "process: its first lookup reads the registry and the interfaces)")
    about.add_row("  time", timing)
    parts: list[Any] = [Text(""), Text(f"{call.caller}: {call.url}", style="bold"), about]
    if call.error:
        parts.append(Text(f"  failed: {call.error}", style="bold red"))
    return parts


def render_byname_leg(leg: ByNameLegResult) -> Panel:
    """The services and their registered addresses, each call by name (what the registry's
    ranking gave the caller, and why), then by name vs by address side by side."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column(overflow="fold")
    head.add_row("registry", leg.registry or "-")
    for name, urls in leg.services.items():
        head.add_row(f"service {name}", ", ".join(urls))
    head.add_row("host B", leg.host_b or "-")
    parts: list[Any] = [head]
    for call in leg.calls:
        parts += _call(call)
    side = Table(title="by name vs by address (this host)", header_style="bold")
    side.add_column("called", no_wrap=True)
    for name in ("p50", "p99", "vs address"):
        side.add_column(name, justify="right", no_wrap=True)
    for label, lat, rel in (("by name: http+svc://users/", leg.by_name, leg.ratio),
                            ("by address (the same socket)", leg.direct,
                             1.0 if leg.direct else None)):
        side.add_row(label, fmt_ns(lat.p50_ns) if lat else "-",
                     fmt_ns(lat.p99_ns) if lat else "-",
                     f"{rel:.3f}x" if rel is not None else "-")
    parts += [Text(""), side,
              Text(f"{leg.requests} keep-alive GETs each way, interleaved in blocks of 10; "
                   "the name is resolved from the client's cache (no registry round trip); "
                   f"by address: {leg.direct_url}", style="dim")]
    parts += [Text(note, style="dim") for note in leg.notes]
    if leg.error:
        parts.append(Text(f"failed: {leg.error}", style="bold red"))
    return Panel(Group(*parts), title=f"[bold]{leg.title}[/] ({leg.name})", title_align="left",
                 border_style="green" if leg.ok else "red")


__all__ = ["render_byname_leg"]
