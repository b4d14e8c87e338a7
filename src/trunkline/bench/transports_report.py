"""``trunkline bench transports`` results as a rich table and as a chart."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .pingpong import PLACEMENTS, TARGET_RATIO
from .plot import Bar, Chart, Group, Panel, ratio_note, spread
from .transports import IMPLS, SENDER_CPU, SINK_CPU, TransportsResult


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def transports_table(result: TransportsResult) -> Table:
    server_cpu, client_cpu = PLACEMENTS[result.placement]
    caption = (f"Round trip: {result.size}-byte ping-pong p50 in microseconds, "
               f"{result.rounds:,} per side, server on CPU {server_cpu}, client on CPU "
               f"{client_cpu}; ratio = trunkline / raw (target <= {TARGET_RATIO}x). Bulk: "
               f"MiB/s, median of {result.bulk_rounds} interleaved rounds, sink on CPU "
               f"{SINK_CPU}, sender on CPU {SENDER_CPU}; streams move "
               f"{result.bulk_size >> 20} MiB over one connection, datagram kinds send "
               f"{result.datagram_size}-byte datagrams as fast as they can for "
               f"{result.datagram_seconds:g} s (MiB/s delivered; lost = % of those sent); "
               "ratio = trunkline / raw; vs tcp4 = raw MiB/s over TCP loopback's.")
    table = Table(title="Socket kinds on this machine: trunkline vs raw asyncio (uvloop)",
                  header_style="bold", caption=caption)
    table.add_column("kind", no_wrap=True)
    for name in ("raw p50", "tl p50", "ratio", "raw MiB/s", "tl MiB/s", "ratio", "lost raw/tl",
                 "vs tcp4"):
        table.add_column(name, justify="right", no_wrap=True)
    for kind in result.kinds:
        ping = result.latency.get(kind)
        raw_lat = ping.raw if ping else None
        tl_lat = ping.trunkline if ping else None
        ratio = ping.ratio if ping else None
        ratio_text = Text(_times(ratio))
        if ping is not None and ping.meets_target is False:
            ratio_text.stylize("bold red")
        lost_raw, lost_tl = result.lost_percent(kind, "raw"), result.lost_percent(kind,
                                                                                   "trunkline")
        lost = "-" if lost_raw is None and lost_tl is None else \
            f"{_num(lost_raw)}% / {_num(lost_tl)}%"
        table.add_row(kind, _num(raw_lat.p50_us if raw_lat else None),
                      _num(tl_lat.p50_us if tl_lat else None), ratio_text,
                      _num(result.bulk_median(kind, "raw"), 0),
                      _num(result.bulk_median(kind, "trunkline"), 0),
                      _times(result.bulk_ratio(kind)), lost,
                      _times(result.vs_tcp(kind, "raw")))
    return table


def transports_notes(result: TransportsResult) -> list[str]:
    notes = [f"{kind} round trip: {ping.error}" for kind, ping in result.latency.items()
             if ping.error]
    return notes + [f"{what}: {error}" for what, error in result.errors.items()]


def transports_chart(result: TransportsResult, footnote: str = "") -> Chart:
    latency_groups, bulk_groups = [], []
    for kind in result.kinds:
        ping = result.latency.get(kind)
        bars = []
        for impl in IMPLS:
            lat = (ping.raw if impl == "raw" else ping.trunkline) if ping else None
            low, high = spread(list(lat.block_p50_us)) if lat else (None, None)
            bars.append(Bar(impl, lat.p50_us if lat else None, low, high))
        latency_groups.append(Group(kind, bars, ratio_note(
            ping.trunkline.p50_us if ping and ping.trunkline else None,
            ping.raw.p50_us if ping and ping.raw else None, "raw")))
        bulk_bars = []
        for impl in IMPLS:
            low, high = spread(result.rates(kind, impl))
            bulk_bars.append(Bar(impl, result.bulk_median(kind, impl), low, high))
        bulk_groups.append(Group(kind, bulk_bars, ratio_note(
            result.bulk_median(kind, "trunkline"), result.bulk_median(kind, "raw"), "raw")))
    server_cpu, client_cpu = PLACEMENTS[result.placement]
    panels = [
        Panel(f"{result.size}-byte round trip p50, server CPU {server_cpu}, client CPU "
              f"{client_cpu}", "microseconds", latency_groups, higher_is_better=False),
        Panel(f"bulk throughput, one connection (datagrams: {result.datagram_size} B each, "
              "delivered)", "MiB/s", bulk_groups)]
    return Chart("Socket kinds on this machine: trunkline vs raw asyncio on uvloop", panels,
                 bars=f"round trip: p50 of {result.rounds:,} round trips; bulk: median of "
                      f"{result.bulk_rounds} interleaved rounds",
                 whiskers="round trip: min..max of the p50s of each block of round trips "
                          "(the client alternates servers block by block); bulk: min..max of "
                          "the rounds; ratio = trunkline / raw",
                 footnote=footnote, peers=["trunkline", "raw"])


__all__ = ["transports_chart", "transports_notes", "transports_table"]
