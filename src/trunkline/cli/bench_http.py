"""``trunkline bench http``: the HTTP server against uvicorn and granian, as users run them."""

from __future__ import annotations

import json

import click
from rich.console import Console

from ..bench.http_servers import DEFAULT_SERVERS, KINDS, SERVERS
from ..bench.report import host_line
from .bench import _console, _split, bench_group, measuring, plot_option, write_plot

HTTP_EPILOG = """\b
Examples:
  trunkline bench http                                 tcp and unix, 1 and 2 workers, log off
  trunkline bench http --kinds tcp --workers 1 --rounds 5 --seconds 5
  trunkline bench http --access-log off,on --workers 1 --plot http.png
  trunkline bench http --servers trunkline,uvicorn --json

\b
The same hello-world ASGI app served by each server's own command line:
  trunkline serve trunkline.apps.hello:hello_app --on URL -q
  uvicorn trunkline.apps.hello:hello_app --loop uvloop --http httptools --no-access-log
  granian --interface asgi --loop uvloop trunkline.apps.hello:hello_app  (if installed)
  trunkline-api (only when listed): serve_app(load_app(...)) from python -c, the library call
--access-log on drops -q / --no-access-log (granian gets --access-log: its default is off).
--workers N passes --workers N to each server (for 1, nothing); a trunkline serve that refuses
the option shows "not supported by this trunkline serve" in its cells.
Load: wrk over TCP, h2load --h1 over the Unix socket (Debian: wrk, nghttp2-client).
1 worker: server on CPU 0, load generator on CPU 1 (taskset); more workers: nothing pinned.
Rounds interleave the servers; each measurement starts a fresh server and warms it up.
Exit 0 unless a tool is missing or the options are wrong (2)."""


def _workers(values: tuple[str, ...]) -> list[int]:
    counts = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            if not item.isdigit() or int(item) < 1:
                raise click.BadParameter(f"{item!r} is not a worker count: use 1, 2, ... "
                                         "(e.g. --workers 1,2)", param_hint="--workers")
            counts.append(int(item))
    return counts or [1, 2]


def _access_logs(values: tuple[str, ...]) -> list[bool]:
    choices = _split(values, ("off", "on"), "access-log setting")
    return [c == "on" for c in choices] or [False]


@bench_group.command("http", epilog=HTTP_EPILOG)
@click.option("--servers", "servers", multiple=True, metavar="SERVER[,SERVER...]",
              help="Servers to compare: trunkline, uvicorn, granian, trunkline-api "
                   "(default: the first three).")
@click.option("--kinds", "kinds", multiple=True, metavar="tcp,unix",
              help="Transports (default: both).")
@click.option("--workers", "workers", multiple=True, metavar="N[,N...]",
              help="Worker counts to measure (default: 1,2).")
@click.option("--access-log", "access_logs", multiple=True, metavar="off,on",
              help="Access log off (-q / --no-access-log), on (each server's default), or "
                   "both (default: off).")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True,
              help="Interleaved rounds; the table shows the median and the best.")
@click.option("--seconds", type=click.IntRange(1), default=3, show_default=True,
              help="Timed seconds per measurement (whole seconds: wrk counts in those).")
@click.option("--warmup", type=click.IntRange(0), default=1, show_default=True,
              help="Untimed seconds of load first.")
@click.option("--connections", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="Keep-alive connections the load generator holds.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@plot_option
def http_command(servers: tuple[str, ...], kinds: tuple[str, ...], workers: tuple[str, ...],
                 access_logs: tuple[str, ...], rounds: int, seconds: int, warmup: int,
                 connections: int, as_json: bool, plot_path: str | None) -> None:
    """HTTP requests/s: trunkline serve against uvicorn and granian, side by side."""
    from ..bench.http import make_cases, run_http_bench
    from ..bench.http_report import http_chart, http_notes, http_scaling_table, http_table

    server_list = _split(servers, SERVERS, "server") or list(DEFAULT_SERVERS)
    cases = make_cases(_split(kinds, KINDS, "transport") or list(KINDS), _workers(workers),
                       _access_logs(access_logs))
    out = _console()
    if not out.is_terminal:
        out = Console(highlight=False, width=150)  # the rounds column is wide
    with measuring("bench http", plot_path, as_json) as progress:
        result = run_http_bench(server_list, cases, rounds=rounds, seconds=seconds,
                                warmup=warmup, connections=connections, progress=progress)
    if as_json:
        click.echo(json.dumps({"host": host_line(), **result.to_json()}, indent=2))
    else:
        out.print(f"[dim]{host_line()}[/]")
        out.print(http_table(result))
        scaling = http_scaling_table(result)
        if scaling is not None:
            out.print(scaling)
        for note in http_notes(result):
            out.print(f"[yellow]{note}[/]", soft_wrap=True)
    write_plot("bench http", plot_path, lambda: http_chart(result, host_line()))
