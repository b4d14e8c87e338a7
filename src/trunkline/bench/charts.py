"""Charts (``--plot``) for the ping-pong, relay and WebSocket benches; the newer benches keep
theirs beside their tables (``*_report.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .pingpong import PLACEMENTS, PingPongResult
from .plot import Bar, Chart, Group, Panel, ratio_note, spread
from .relay_bulk import RelayResult

if TYPE_CHECKING:  # the WebSocket bench's modules load only when it runs
    from .websocket import WsBenchResult


def pingpong_chart(results: Sequence[PingPongResult], size: int, footnote: str = "") -> Chart:
    panels = []
    for placement in PLACEMENTS:
        mine = [r for r in results if r.placement == placement]
        if not mine:
            continue
        groups = []
        for r in mine:
            bars = []
            for peer, latency in (("raw", r.raw), ("trunkline", r.trunkline)):
                low, high = spread(list(latency.block_p50_us)) if latency else (None, None)
                bars.append(Bar(peer, latency.p50_us if latency else None, low, high))
            groups.append(Group(r.kind, bars, ratio_note(
                r.trunkline.p50_us if r.trunkline else None, r.raw.p50_us if r.raw else None,
                "raw")))
        server, client = PLACEMENTS[placement]
        panels.append(Panel(f"{size}-byte round trip p50, {placement} CPU (server {server}, "
                            f"client {client})", "microseconds", groups,
                            higher_is_better=False))
    rounds = next((r.raw.rounds for r in results if r.raw), 0)
    return Chart("Ping-pong round trip: trunkline vs raw asyncio on uvloop", panels,
                 bars=f"p50 of {rounds:,} round trips per side",
                 whiskers="min..max of the p50s of each block of round trips (the client "
                          "alternates servers block by block); ratio = trunkline / raw",
                 footnote=footnote, peers=["trunkline", "raw"])


def relay_chart(result: RelayResult, footnote: str = "") -> Chart:
    bars = []
    for relay in ("trunkline", "socat"):
        if relay not in result.runs and relay not in result.errors:
            continue
        rates = [run.mib_per_s for run in result.runs.get(relay, [])]
        median = result.median(relay)
        low, high = spread(rates)
        bars.append(Bar(relay, median.mib_per_s if median else None, low, high))
    ours, theirs = result.median("trunkline"), result.median("socat")
    note = ratio_note(ours.mib_per_s if ours else None, theirs.mib_per_s if theirs else None,
                      "socat")
    runs = max((len(r) for r in result.runs.values()), default=0)
    group = Group(f"TCP in, Unix socket out ({result.size >> 20} MiB)", bars, note)
    return Chart("Relay bulk throughput: trunkline relay vs socat",
                 [Panel("one connection through the relay", "MiB/s", [group])],
                 bars=f"median of {runs} alternating run(s)",
                 whiskers="min..max of the runs; ratio = trunkline / socat (medians)",
                 footnote=footnote, peers=["trunkline", "socat"])


def ws_chart(result: WsBenchResult, footnote: str = "") -> Chart:
    panels = []
    for mode in result.modes:
        groups = []
        for transport in result.transports:
            bars = []
            for impl in result.impls:
                rates = [r.rate for r in result.runs.get((impl, transport, mode), [])]
                low, high = spread(rates)
                bars.append(Bar(impl, result.median(impl, transport, mode), low, high))
            notes = [ratio_note(result.median("trunkline", transport, mode),
                                result.median(peer, transport, mode), peer)
                     for peer in ("aiohttp", "picows") if peer in result.impls]
            groups.append(Group(transport, bars, "\n".join(n for n in notes if n)))
        inflight = 1 if mode == "seq" else result.inflight
        panels.append(Panel(f"{mode}: {inflight} message(s) in flight", "round trips/s",
                            groups))
    return Chart(f"WebSocket echo, {result.size}-byte messages: trunkline vs "
                 + ", ".join(i for i in result.impls if i != "trunkline"), panels,
                 bars=f"median of {result.rounds} interleaved rounds of {result.seconds:g} s",
                 whiskers="min..max of the rounds; ratio = trunkline / peer (medians)",
                 footnote=footnote, peers=result.impls)


__all__ = ["pingpong_chart", "relay_chart", "ws_chart"]
