"""``trunkline bench``: trunkline against raw baselines, measured side by side in one run."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..bench.charts import pingpong_chart, relay_chart
from ..bench.pingpong import KINDS, PLACEMENTS, run_pingpong
from ..bench.plot import Chart, require_matplotlib
from ..bench.process import BenchError
from ..bench.relay_bulk import RELAYS, parse_size, run_relay_bulk
from ..bench.report import host_line, pingpong_json, pingpong_table, relay_json, relay_table
from ._support import fail
from .exits import Exit, exit_help
from .main import cli

GROUP_EPILOG = """\b
Examples:
  trunkline bench pingpong                          every socket kind, both CPU placements
  trunkline bench pingpong --kinds unix,fifo --rounds 5000
  trunkline bench relay --size 1G                   trunkline relay against socat
  trunkline bench ws                                WebSocket echo vs websockets, aiohttp, picows
  trunkline bench http                              HTTP server vs uvicorn and granian
  trunkline bench transports                        every socket kind: round trip and bulk
  trunkline bench udp --rate 100M                   datagram health: loss, reorder, jitter
  trunkline bench byname                            a call by name vs the same call by address
  trunkline bench pingpong --plot pingpong.png      any of them also as a bar chart (PNG)

\b
Every figure is a ratio measured side by side in one run, each end in its own process pinned
with taskset. The same workloads run from benchmarks/*.py. Every command takes --json and
--plot FILE.png (matplotlib: pip install 'trunkline[plot]') and shows a progress bar on a
terminal."""

PINGPONG_EPILOG = """\b
Examples:
  trunkline bench pingpong
  trunkline bench pingpong --kinds unix,abstract --placement same
  trunkline bench pingpong --kinds tcp4 --rounds 100000 --size 1024 --json

\b
Kinds: """ + ", ".join(KINDS) + """.
Per kind and placement a raw echo server (plain asyncio Protocol on uvloop) and a
trunkline one (trunkline.serve, echo handler) run at once; one client process alternates
between them in blocks, so load changes hit both alike. same = both ends on CPU 0,
cross = server on CPU 0, client on CPU 1 (a cross-CPU wake-up costs ~20 us on a VM).
Exit 0 unless --check is given and a ratio misses its target (1)."""

RELAY_EPILOG = """\b
Examples:
  trunkline bench relay
  trunkline bench relay --size 256M --repeat 3
  trunkline bench relay --relays trunkline --json

\b
A sender writes SIZE bytes into the relay's TCP side; a sink on the Unix-socket side counts
them. The relay (trunkline relay, then socat) runs pinned to CPU 0, sender and sink to
CPU 1, so the relay is the bottleneck. Needs socat for the comparison."""


def _split(values: tuple[str, ...], allowed: Iterable[str], what: str) -> list[str]:
    """Comma-separated and/or repeated option values, each checked against ``allowed``."""
    choices = list(allowed)
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    for item in items:
        if item not in choices:
            raise click.BadParameter(f"unknown {what} {item!r}; choose from "
                                     f"{', '.join(choices)}")
    return items


def _console() -> Console:
    """stdout; wide enough for the tables when it is a file or a pipe (rich assumes 80)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=120)
    return console


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int, str], None]]:
    """A rich progress bar on stderr (when it is a terminal); the callback the workloads
    call."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield lambda done, total, what: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("starting", total=None)

        def update(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, description=what)

        yield update


@contextmanager
def measuring(command: str, plot_path: str | None, as_json: bool, *,
              errors: tuple[type[BaseException], ...] = (BenchError,),
              code: int = Exit.USAGE) -> Iterator[Callable[[int, int, str], None]]:
    """What every bench command does around its run: check ``--plot`` before measuring
    anything, show the progress bar (not with --json), and turn the run's own errors into
    one line and ``code``."""
    check_plot(command, plot_path)
    try:
        with _progress(not as_json) as progress:
            yield progress
    except errors as exc:
        fail(command, str(exc), code)


F = TypeVar("F", bound=Callable[..., Any])


def plot_option(func: F) -> F:
    """``--plot FILE.png``, the same on every bench command."""
    option = click.option(
        "--plot", "plot_path", metavar="FILE.png", default=None,
        help="Also draw the results as a bar chart into this PNG file (needs matplotlib: "
             "pip install 'trunkline[plot]').")
    return option(func)


def check_plot(command: str, path: str | None) -> None:
    """Before measuring anything: matplotlib is there and the file can be written."""
    if path is None:
        return
    try:
        require_matplotlib()
    except BenchError as exc:
        fail(command, str(exc), Exit.USAGE)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        fail(command, f"cannot write --plot {path}: the folder {folder} does not exist",
             Exit.WRITE)


def write_plot(command: str, path: str | None, chart: Callable[[], Chart]) -> None:
    """Draw the chart (built only when asked for) and say where it went, on stderr so that
    --json output stays clean."""
    if path is None:
        return
    from ..bench.plot import render_png

    sys.stdout.flush()  # the table first, then this line, when both go to one place
    try:
        render_png(chart(), path)
    except (OSError, ValueError) as exc:
        fail(command, f"cannot write --plot {path}: {exc}", Exit.WRITE)
    Console(stderr=True, highlight=False).print(f"[dim]plot written to {path}[/]")


@cli.group("bench", epilog=GROUP_EPILOG + "\n\n" + exit_help(Exit.OK, Exit.CANNOT_LISTEN,
                                                              Exit.USAGE, Exit.WRITE,
                                                              Exit.INTERRUPTED))
def bench_group() -> None:
    """Measure trunkline against raw baselines, side by side."""


@bench_group.command("pingpong", epilog=PINGPONG_EPILOG)
@click.option("--kinds", "kinds", multiple=True, metavar="KIND[,KIND...]",
              help="Socket kinds to measure (default: all).")
@click.option("--placement", "placements", multiple=True, metavar="same|cross",
              help="CPU placements (default: same,cross).")
@click.option("--rounds", type=click.IntRange(1), default=20_000, show_default=True,
              help="Timed round trips per side.")
@click.option("--warmup", type=click.IntRange(0), default=2_000, show_default=True,
              help="Untimed round trips first.")
@click.option("--size", type=click.IntRange(1, 65_000), default=64, show_default=True,
              help="Bytes per ping.")
@click.option("--block", type=click.IntRange(1), default=1_000, show_default=True,
              help="Round trips before the client switches to the other server.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--check", is_flag=True, help="Exit 1 if a ratio misses its target.")
@plot_option
def pingpong_command(kinds: tuple[str, ...], placements: tuple[str, ...], rounds: int,
                     warmup: int, size: int, block: int, as_json: bool, check: bool,
                     plot_path: str | None) -> None:
    """Round-trip latency of every socket kind: trunkline against raw asyncio."""
    kind_list = _split(kinds, KINDS, "kind") or list(KINDS)
    placement_list = _split(placements, PLACEMENTS, "placement") or list(PLACEMENTS)
    out = _console()
    with measuring("bench pingpong", plot_path, as_json) as progress:
        results = run_pingpong(kind_list, placement_list, rounds=rounds, warmup=warmup,
                               size=size, block=block, progress=progress)
    if as_json:
        click.echo(json.dumps({"host": host_line(), "rounds": rounds, "size": size,
                               "results": pingpong_json(results)}, indent=2))
    else:
        out.print(f"[dim]{host_line()}; {rounds:,} round trips per side after {warmup:,} "
                  "warm-up[/]")
        out.print(pingpong_table(results, size))
    write_plot("bench pingpong", plot_path,
               lambda: pingpong_chart(results, size, host_line()))
    if check and any(r.meets_target is not True for r in results):
        raise SystemExit(Exit.CANNOT_LISTEN)


@bench_group.command("relay", epilog=RELAY_EPILOG)
@click.option("--size", "size_text", default="1G", show_default=True, metavar="SIZE",
              help="Bytes to push through, e.g. 1G, 256M.")
@click.option("--repeat", type=click.IntRange(1), default=1, show_default=True,
              help="Runs per relay (alternating); the table shows the median.")
@click.option("--relays", "relays", multiple=True, metavar="socat,trunkline",
              help="Relays to measure (default: both).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--check", is_flag=True, help="Exit 1 if the ratio misses its target.")
@plot_option
def relay_command(size_text: str, repeat: int, relays: tuple[str, ...], as_json: bool,
                  check: bool, plot_path: str | None) -> None:
    """Bulk throughput of `trunkline relay` (TCP to Unix socket) against socat."""
    relay_list = _split(relays, RELAYS, "relay") or list(RELAYS)
    out = _console()
    with measuring("bench relay", plot_path, as_json) as progress:
        result = run_relay_bulk(parse_size(size_text), relay_list, repeat=repeat,
                                progress=progress)
    if as_json:
        click.echo(json.dumps({"host": host_line(), **relay_json(result)}, indent=2))
    else:
        out.print(f"[dim]{host_line()}[/]")
        out.print(relay_table(result))
    write_plot("bench relay", plot_path, lambda: relay_chart(result, host_line()))
    if check and result.meets_target is not True:
        raise SystemExit(Exit.CANNOT_LISTEN)


WS_EPILOG = """\b
Examples:
  trunkline bench ws
  trunkline bench ws --impls trunkline,aiohttp --transports tcp --modes seq
  trunkline bench ws --rounds 5 --seconds 3 --json

\b
Echo round trips per second of 32-byte binary messages: trunkline, websockets, aiohttp and
picows, each implementation's own client against its own server (separate processes; server
on CPU 0, client on CPU 1), uvloop, compression off on all. seq = 1 message in flight,
pipe = --inflight in flight. Rounds interleave the implementations; the table shows medians
and the ratios vs aiohttp (target >= 1.0x) and vs picows. Implementations that are not
installed, or cannot use a transport, are listed as n/a."""


@bench_group.command("ws", epilog=WS_EPILOG)
@click.option("--impls", "impls", multiple=True, metavar="IMPL[,IMPL...]",
              help="Implementations (default: trunkline,websockets,aiohttp,picows).")
@click.option("--transports", "transports", multiple=True, metavar="tcp,unix",
              help="Transports (default: both).")
@click.option("--modes", "modes", multiple=True, metavar="seq,pipe",
              help="Sequential and/or pipelined (default: both).")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True,
              help="Interleaved rounds; the table shows the median.")
@click.option("--seconds", type=click.FloatRange(0.05), default=2.0, show_default=True,
              help="Timed seconds per measurement.")
@click.option("--warmup", type=click.FloatRange(0), default=0.3, show_default=True,
              help="Untimed seconds first.")
@click.option("--size", type=click.IntRange(1, 1 << 20), default=32, show_default=True,
              help="Bytes per message.")
@click.option("--inflight", type=click.IntRange(2, 4096), default=16, show_default=True,
              help="Messages in flight when pipelined.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--check", is_flag=True, help="Exit 1 if trunkline is below aiohttp anywhere.")
@plot_option
def ws_command(impls: tuple[str, ...], transports: tuple[str, ...], modes: tuple[str, ...],
               rounds: int, seconds: float, warmup: float, size: int, inflight: int,
               as_json: bool, check: bool, plot_path: str | None) -> None:
    """WebSocket echo round trips/s: trunkline against websockets, aiohttp, picows."""
    from ..bench.charts import ws_chart
    from ..bench.websocket import IMPLS, MODES, TRANSPORTS, run_ws_bench, ws_table

    out = _console()
    if not out.is_terminal:
        out = Console(highlight=False, width=140)  # the table is wider than the others
    with measuring("bench ws", plot_path, as_json) as progress:
        result = run_ws_bench(
            _split(impls, IMPLS, "implementation") or list(IMPLS),
            _split(transports, TRANSPORTS, "transport") or list(TRANSPORTS),
            _split(modes, MODES, "mode") or list(MODES), rounds=rounds, seconds=seconds,
            warmup=warmup, size=size, inflight=inflight, progress=progress)
    if as_json:
        click.echo(json.dumps({"host": host_line(), **result.to_json()}, indent=2))
    else:
        out.print(f"[dim]{host_line()}[/]")
        out.print(ws_table(result))
        for what, error in result.errors.items():
            out.print(f"[dim]n/a {what}: {error}[/]", soft_wrap=True)
    write_plot("bench ws", plot_path, lambda: ws_chart(result, host_line()))
    if check and result.meets_target() is not True:
        raise SystemExit(Exit.CANNOT_LISTEN)
