"""``trunkline bench byname``: what calling a service by name costs against its address."""

from __future__ import annotations

import json

import click

from .. import _loop
from ..bench.report import host_line
from .bench import _console, bench_group, measuring, plot_option, write_plot
from .exits import Exit

BYNAME_EPILOG = """\b
Examples:
  trunkline bench byname
  trunkline bench byname --blocks 60 --json
  trunkline bench byname --plot byname.png

\b
One process serves a tiny HTTP app and a byte echo on abstract Unix names, registered by
name in a registry file of its own (a fresh temp dir). Each workload runs by name (the
resolver's cached answer: no registry round trip) and by the address the name resolves
to, in alternating blocks: HTTP keep-alive GETs (http+svc:// vs http+unix://), and a new
raw connection plus one 64-byte round trip (svc:// vs unix:@). The table shows the median
of the per-block means and the ratio by name / by address (target <= 1.05x). Client and
server share the process; on a busy machine the ratio moves by several percent both ways:
use --blocks 60 and compare runs. The same workload runs from benchmarks/registry.py."""


@bench_group.command("byname", epilog=BYNAME_EPILOG)
@click.option("--blocks", type=click.IntRange(1), default=20, show_default=True,
              help="Alternating blocks per workload and side.")
@click.option("--http-per-block", type=click.IntRange(1), default=500, show_default=True,
              help="HTTP keep-alive GETs per block.")
@click.option("--raw-per-block", type=click.IntRange(1), default=100, show_default=True,
              help="Raw connections (each with one round trip) per block.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--check", is_flag=True, help="Exit 1 if a ratio misses its target.")
@plot_option
def byname_command(blocks: int, http_per_block: int, raw_per_block: int, as_json: bool,
                   check: bool, plot_path: str | None) -> None:
    """A call by name against the same call by address: HTTP keep-alive and raw connect."""
    from ..bench.byname import TARGET, by_name_vs_direct, byname_chart, byname_table
    from ..errors import TrunklineError

    out = _console()
    with measuring("bench byname", plot_path, as_json, errors=(TrunklineError, OSError),
                   code=Exit.CANNOT_LISTEN) as progress:
        pairs = _loop.run(by_name_vs_direct(blocks=blocks, http_per_block=http_per_block,
                                            raw_per_block=raw_per_block, progress=progress))
    if as_json:
        click.echo(json.dumps({"host": host_line(), "target": TARGET,
                               "results": [p.to_dict() for p in pairs]}, indent=2))
    else:
        out.print(f"[dim]{host_line()}[/]")
        out.print(byname_table(pairs))
    write_plot("bench byname", plot_path, lambda: byname_chart(pairs, host_line()))
    if check and any(p.ratio > TARGET for p in pairs):
        raise SystemExit(Exit.CANNOT_LISTEN)
