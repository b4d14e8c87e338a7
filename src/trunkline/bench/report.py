"""Rich tables and JSON for benchmark results. Builds them; ``cli/`` and ``benchmarks/`` print."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from .pingpong import KINDS, PLACEMENTS, TARGET_RATIO, PingPongResult
from .relay_bulk import TARGET_RATIO as RELAY_TARGET
from .relay_bulk import RelayResult


def host_line() -> str:
    """Where the figures were measured: Python, loop, kernel, CPUs."""
    try:
        loop = f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:
        loop = "asyncio (uvloop not installed)"
    return (f"Python {sys.version.split()[0]}, {loop}, Linux {platform.release()}, "
            f"{os.cpu_count()} CPUs")


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ratio(value: float | None, ok: bool | None) -> Text:
    if value is None:
        return Text("-")
    text = f"{value:.2f}x"
    return Text(text, style="green") if ok else Text(text + " MISS", style="bold red")


def pingpong_table(results: Sequence[PingPongResult], size: int = 64) -> Table:
    caption = (f"tl = trunkline; ratio = tl p50 / raw p50, target <= {TARGET_RATIO}x; "
               "rt/s = round trips per second. CPUs: same = server and client on CPU 0, "
               "cross = server on CPU 0, client on CPU 1.")
    table = Table(title=f"{size}-byte ping-pong round trip, microseconds (lower is better)",
                  header_style="bold", caption=caption)
    table.add_column("kind", no_wrap=True)
    table.add_column("CPUs", no_wrap=True)
    for name in ("raw p50", "raw p99", "tl p50", "tl p99", "ratio", "p99 ratio", "raw rt/s",
                 "tl rt/s"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in results:
        raw, ours = r.raw, r.trunkline
        table.add_row(
            r.kind, r.placement, _us(raw.p50_us if raw else None),
            _us(raw.p99_us if raw else None), _us(ours.p50_us if ours else None),
            _us(ours.p99_us if ours else None),
            _ratio(r.ratio, r.meets_target),
            "-" if r.ratio_p99 is None else f"{r.ratio_p99:.2f}x",
            f"{raw.rate:,.0f}" if raw else "-", f"{ours.rate:,.0f}" if ours else "-")
        if r.error:
            table.add_row("", "", Text(r.error[:300], style="red"), end_section=False)
    return table


def pingpong_json(results: Sequence[PingPongResult]) -> list[dict[str, Any]]:
    return [{"kind": r.kind, "placement": r.placement, "cpus": PLACEMENTS[r.placement],
             "raw": r.raw.to_json() if r.raw else None,
             "trunkline": r.trunkline.to_json() if r.trunkline else None,
             "ratio_p50": r.ratio, "ratio_p99": r.ratio_p99, "meets_target": r.meets_target,
             "error": r.error} for r in results]


def relay_table(result: RelayResult) -> Table:
    size_mib = result.size / (1 << 20)
    caption = (f"One connection, TCP in, Unix socket out. ratio = trunkline / socat (median "
               f"runs); target >= {RELAY_TARGET}x. Relay on CPU 0, sender and sink on CPU 1.")
    table = Table(title=f"relay bulk: {size_mib:,.0f} MiB (higher is better)",
                  header_style="bold", caption=caption)
    table.add_column("relay", no_wrap=True)
    table.add_column("MiB/s (median)", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("runs, MiB/s", justify="right")
    table.add_column("ratio", justify="right")
    for relay, runs in result.runs.items():
        median = result.median(relay)
        ratio = Text("1.00x") if relay == "socat" else _ratio(result.ratio, result.meets_target)
        table.add_row(relay, f"{median.mib_per_s:,.0f}" if median else "-",
                      f"{median.seconds:.2f}" if median else "-",
                      ", ".join(f"{run.mib_per_s:,.0f}" for run in runs) or "-",
                      ratio if median else Text("-"))
    for relay, error in result.errors.items():
        table.add_row(relay, Text(error[:300], style="red"), "", "", "")
    return table


def relay_json(result: RelayResult) -> dict[str, Any]:
    return {"size": result.size,
            "runs": {relay: [{"mib_per_s": run.mib_per_s, "seconds": run.seconds}
                             for run in runs] for relay, runs in result.runs.items()},
            "median_mib_per_s": {relay: (b.mib_per_s if (b := result.median(relay)) else None)
                                 for relay in result.runs},
            "ratio": result.ratio, "meets_target": result.meets_target,
            "errors": result.errors}


__all__ = ["KINDS", "host_line", "pingpong_json", "pingpong_table", "relay_json",
           "relay_table"]
