"""``trunkline tour``: run the tour (``trunkline.tour``) and show what it found."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .. import _loop
from ..address import Identity
from ..tour import (
    DEFAULT_ROUNDS,
    ByNameLegResult,
    HttpLegResult,
    LegResult,
    TourResult,
    TraceLeg,
    default_legs,
    run_tour,
)
from ..tour.http_leg import ratio
from ..tour.model import describe_credentials
from ..tour.ws_leg import WsLegResult
from .exits import Exit, exit_help
from .main import cli

EXAMPLES = """\b
Examples:
  trunkline tour                        every transport, 2000 round trips each
  trunkline tour --rounds 200 --only tcp --only unix
  trunkline tour --only http            the demo users API over tcp, unix, abstract, fifo
  trunkline tour --only trace --trace-dir ./traces   one traced HTTP request per transport
  trunkline tour --only ws              a full-duplex WebSocket over TCP and a Unix socket
  sudo trunkline tour --only byname     services by name, from this host and from host B
  trunkline tour --json | jq '.legs[] | {name, p50: .latency.p50_ns}'

\b
Starts one echo service on this machine over TCP loopback, a Unix socket path, an
abstract Unix socket, a FIFO pair and UDP (files in a fresh private temp dir), talks to
each from a client in the same process, and shows per transport: the sockets' identities
(both ends), the steps of the connection with their durations, and round-trip latency
(p50/p99 of 64-byte messages). The HTTP leg serves a small users API from one server on
TCP, a Unix socket path, an abstract name and a FIFO at once, calls it over each (POST
/users, GET /users, GET /users/{id}, then rounds/4 keep-alive GETs) and shows status, body
and latency side by side. The trace leg sends one traced GET /users per transport to the
same API on a traced server and shows both sides' steps as a timeline; its Mermaid diagrams
(one .mmd per transport) and an HTML page go to --trace-dir (default: a new dir under
$XDG_RUNTIME_DIR/trunkline), named at the end. The WebSocket leg talks both ways at once
over TCP and a Unix socket (the server pushes ticks while the client sends and gets acks)
and shows the interleaving, ping RTT and message round trips. The by-name leg registers
two services (users, orders) in a registry of its own and calls http+svc://users/: a caller
here is given the Unix socket (the ranking and its reasons are shown), and the cost of the
name is timed against the same socket's address; as root, a second "host" (a network
namespace on a veth pair, 198.18.0.0/24) calls the same name and is given TCP. Everything
else is removed and checked.
Exit 0 when every leg worked and nothing was left behind, 1 otherwise."""


@cli.command("tour", epilog=EXAMPLES + "\n\n" + exit_help(Exit.OK, Exit.CANNOT_LISTEN, Exit.USAGE,
                                                           Exit.INTERRUPTED))
@click.option("--rounds", type=click.IntRange(1, 1_000_000), default=DEFAULT_ROUNDS,
              show_default=True, help="Round trips per transport for the latency figures.")
@click.option("--only", "only", multiple=True, metavar="KIND",
              help="Run only this leg (repeatable), e.g. tcp, unix, abstract, fifo, udp, http, "
                   "ws, trace, byname.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable results only.")
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds a single step may take before the leg is reported as failed.")
@click.option("--trace-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Where the trace leg writes its Mermaid diagrams and HTML page "
                   "(default: a new dir under $XDG_RUNTIME_DIR/trunkline).")
def tour_command(rounds: int, only: tuple[str, ...], as_json: bool, timeout: float,
                 trace_dir: Path | None) -> None:
    """Show how services on this machine talk over each kind of socket."""
    legs = default_legs()
    traced = [leg for leg in legs if isinstance(leg, TraceLeg)]
    for leg in traced:
        leg.trace_dir = trace_dir
    names = [leg.name for leg in legs]
    unknown = [name for name in only if name not in names]
    if unknown:
        raise click.BadParameter(f"no leg named {', '.join(map(repr, unknown))}; "
                                 f"available: {', '.join(names)}", param_hint="--only")
    if only:
        legs = [leg for leg in legs if leg.name in only]
    out = Console(highlight=False)
    status_console = Console(stderr=True) if as_json else out
    with _status(status_console, enabled=sys.stdout.isatty()) as say:
        try:
            result = _loop.run(run_tour(legs, rounds=rounds, timeout=timeout, progress=say))
        except KeyboardInterrupt:
            raise SystemExit(Exit.INTERRUPTED) from None
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        render(result, out)
        for leg in traced:
            if leg.written_dir is not None:
                out.print(f"traces: Mermaid diagrams and an HTML page in {leg.written_dir}",
                          soft_wrap=True)  # one line: the path stays copyable
    raise SystemExit(Exit.OK if result.ok else Exit.CANNOT_LISTEN)


@contextlib.contextmanager
def _status(console: Console, *, enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield lambda message: None
        return
    with console.status("tour: starting") as status:
        yield lambda message: status.update(f"tour: {message}")


# --------------------------------------------------------------------------- rendering


def fmt_ns(ns: int | None) -> str:
    if ns is None:
        return "-"
    if ns < 1_000:
        return f"{ns} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000_000_000:.2f} s"


def _ident(identity: Identity | None) -> str:
    return "-" if identity is None else str(identity)


def _detail(detail: dict[str, Any]) -> str:
    parts = []
    for key, value in detail.items():
        if isinstance(value, list | tuple):
            value = ", ".join(map(str, value))
        parts.append(f"{key}={value}")
    return "  ".join(parts)


def render_leg(leg: LegResult) -> Panel:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column(overflow="fold")
    head.add_row("service on", leg.server_url or "-")
    head.add_row("client dialled", leg.client_url or "-")
    head.add_row("client socket", _ident(leg.client_local))
    head.add_row("  connected to", _ident(leg.client_peer))
    head.add_row("server socket", _ident(leg.server_local))
    head.add_row("  talking to", _ident(leg.server_peer))
    creds = describe_credentials(leg.peer_process)
    if creds:
        head.add_row("peer process", f"{creds} (as the server sees the client)")
    parts: list[Any] = [head]
    if leg.steps:
        steps = Table(box=None, padding=(0, 2), show_edge=False, header_style="bold")
        steps.add_column("step")
        steps.add_column("side")
        steps.add_column("time", justify="right")
        steps.add_column("detail", overflow="fold")
        for step in leg.steps:
            steps.add_row(step.step, step.side, fmt_ns(step.duration_ns), _detail(step.detail))
        parts += [Text(""), steps]
    if leg.latency is not None:
        lat = leg.latency
        parts.append(Text(
            f"\n{lat.rounds} round trips of {lat.size} bytes: p50 {fmt_ns(lat.p50_ns)}, "
            f"p99 {fmt_ns(lat.p99_ns)} (min {fmt_ns(lat.min_ns)}, max {fmt_ns(lat.max_ns)})"))
    parts += [Text(note, style="dim") for note in leg.notes]
    if leg.error:
        parts.append(Text(f"failed: {leg.error}", style="bold red"))
    border = "green" if leg.ok else "red"
    return Panel(Group(*parts), title=f"[bold]{leg.title}[/] ({leg.name})", title_align="left",
                 border_style=border)


def _status_text(status: int) -> Text:
    return Text(str(status), style="green" if 200 <= status < 300 else "bold red")


def render_http_leg(leg: HttpLegResult) -> Panel:
    """The HTTP leg: per transport the sockets both ends saw and each call's request line,
    status, time and body; then every transport side by side with its GET latency."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column(overflow="fold")
    head.add_row("service on", leg.server_url or "-")
    head.add_row("app", "the demo users API, one server on every address at once")
    if leg.lifespan:
        head.add_row("lifespan", ", ".join(f"{step} {'ran' if ran else 'DID NOT RUN'}"
                                           for step, ran in leg.lifespan.items()))
    parts: list[Any] = [head]
    for transport in leg.transports:
        view = transport.server_view or {}
        creds = view.get("credentials")
        saw = (f"pid {creds['pid']} uid {creds['uid']} gid {creds['gid']}" if creds
               else view.get("peer") or "-")
        conns = (", one connection kept alive for every call" if transport.connections == 1
                 else f", {transport.connections} connections" if transport.connections
                 else "")
        about = Table.grid(padding=(0, 1))
        about.add_column(no_wrap=True)
        about.add_column(overflow="fold")
        about.add_row("  client", f"{transport.client_local or '(unnamed)'} -> "
                                  f"{transport.client_peer or '-'}{conns}")
        about.add_row("  server", f"saw {saw} on {view.get('local') or '-'}")
        calls = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False,
                      show_header=False, expand=True)
        calls.add_column("request", no_wrap=True)
        calls.add_column("status", no_wrap=True)
        calls.add_column("time", justify="right", no_wrap=True)
        calls.add_column("body", overflow="fold", style="dim", ratio=1)
        for call in transport.calls:
            body = call.body if len(call.body) <= 56 else call.body[:55] + "…"
            calls.add_row(f"  {call.request_line}", _status_text(call.status),
                          fmt_ns(call.duration_ns), body)
        parts += [Text(""), Text(transport.title, style="bold"), about, calls]
        if transport.error:
            parts.append(Text(f"  failed: {transport.error}", style="bold red"))
    side = Table(title="HTTP side by side", header_style="bold")
    side.add_column("transport", no_wrap=True)
    side.add_column("POST, GET, GET", no_wrap=True)
    for name in ("GET p50", "GET p99", "vs tcp"):
        side.add_column(name, justify="right", no_wrap=True)
    side.add_column("ok", no_wrap=True)
    base = leg.baseline
    for transport in leg.transports:
        statuses = Text(" ").join(_status_text(c.status) for c in transport.calls)
        lat = transport.latency
        rel = ratio(lat, base)
        side.add_row(transport.name, statuses or "-",
                     fmt_ns(lat.p50_ns) if lat else "-", fmt_ns(lat.p99_ns) if lat else "-",
                     f"{rel:.2f}x" if rel is not None else "-",
                     Text("yes", style="green") if transport.ok
                     else Text("FAILED", style="bold red"))
    parts += [Text(""), side,
              Text(f"GET p50/p99: {leg.requests} keep-alive GET /users/{{id}} per transport, "
                   "untraced; call times above include tracing and the first connect",
                   style="dim")]
    parts += [Text(note, style="dim") for note in leg.notes]
    if leg.error:
        parts.append(Text(f"failed: {leg.error}", style="bold red"))
    return Panel(Group(*parts), title=f"[bold]{leg.title}[/] ({leg.name})", title_align="left",
                 border_style="green" if leg.ok else "red")


def summary_table(result: TourResult) -> Table:
    table = Table(title="side by side", header_style="bold")
    table.add_column("transport", no_wrap=True)
    for name in ("connect", "first echo", "p50", "p99", "p50 vs best"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("ok", no_wrap=True)
    best = min((leg.latency.p50_ns for leg in result.legs if leg.latency), default=None)
    for leg in result.legs:
        send, receive = leg.step_ns("send"), leg.step_ns("receive")
        first = None if send is None or receive is None else send + receive
        lat = leg.latency
        ratio = f"{lat.p50_ns / best:.2f}x" if lat and best else "-"
        table.add_row(
            leg.name, fmt_ns(leg.step_ns("connect")), fmt_ns(first),
            fmt_ns(lat.p50_ns) if lat else "-", fmt_ns(lat.p99_ns) if lat else "-", ratio,
            Text("yes", style="green") if leg.ok else Text("FAILED", style="bold red"))
    return table


def render(result: TourResult, console: Console) -> None:
    console.print(f"[bold]trunkline tour[/]: {len(result.legs)} transports, "
                  f"{result.rounds} round trips each, event loop {result.loop}, "
                  f"Python {result.host['python']}, {result.host['kernel']}, "
                  f"{result.host['cpus']} CPUs")
    console.print("[dim]client and service run in this one process, on one event loop[/]\n")
    from .tour_byname import render_byname_leg  # (import this module: not at the top)
    from .tour_ws import render_ws_leg

    for leg in result.legs:
        console.print(render_http_leg(leg) if isinstance(leg, HttpLegResult)
                      else render_ws_leg(leg) if isinstance(leg, WsLegResult)
                      else render_byname_leg(leg) if isinstance(leg, ByNameLegResult)
                      else render_leg(leg))
    if result.legs:
        console.print(summary_table(result))
    if result.error:
        console.print(f"[bold red]tour failed:[/] {result.error}")
    cleanup = result.cleanup
    if cleanup is not None:
        if cleanup.ok:
            console.print(f"cleanup: removed {cleanup.tmpdir}; no files or abstract names left")
        else:
            if cleanup.leftovers:
                console.print(f"[red]cleanup: left in {cleanup.tmpdir}:[/] "
                              f"{', '.join(cleanup.leftovers)}")
            if not cleanup.tmpdir_removed:
                console.print(f"[red]cleanup: could not remove {cleanup.tmpdir}[/]")
            if cleanup.abstract_left:
                console.print(f"[red]cleanup: abstract names still bound:[/] "
                              f"{', '.join(cleanup.abstract_left)}")
