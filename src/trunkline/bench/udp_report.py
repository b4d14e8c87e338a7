"""``trunkline bench udp`` results as a rich table and as a chart."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .plot import Bar, Chart, Group, Panel, ratio_note, spread
from .udp import KINDS, MEASURES, RECEIVER_CPU, SENDER_CPU, UdpBenchResult
from .udp_stats import parse_rate


def _pace(result: UdpBenchResult) -> str:
    if result.pps <= 0:
        return "as fast as the sender can"
    value, unit = parse_rate(result.rate)
    if unit == "pps":
        return f"{result.pps:,.0f} datagrams/s"
    return f"{value / 1e6:,.6g} Mbit/s ({result.pps:,.0f} datagrams/s)"


def udp_table(result: UdpBenchResult) -> Table:
    caption = (f"{result.size}-byte datagrams at {_pace(result)} for {result.seconds:g} s, "
               f"{result.rounds} interleaved rounds; receiver on CPU {RECEIVER_CPU}, sender on "
               f"CPU {SENDER_CPU}. Counts are totals over the rounds: lost = sent - unique "
               "received, reordered = arrived after a higher sequence number, dup = arrived "
               "twice; jitter = RFC 3550 interarrival jitter and Mbit/s = payload delivered "
               "per second of sending, medians of the rounds; qdrop = dropped by the receiving "
               "endpoint's own queue (counted in lost too).")
    title = "Datagram health, iperf3 -u style" + (" (don't fragment)" if result.dont_fragment
                                                   else "")
    table = Table(title=title, header_style="bold", caption=caption)
    table.add_column("kind", no_wrap=True)
    table.add_column("impl", no_wrap=True)
    for name in ("sent", "received", "lost", "lost %", "reordered", "dup", "jitter us",
                 "Mbit/s", "qdrop"):
        table.add_column(name, justify="right", no_wrap=True)
    for kind in result.kinds:
        for n, impl in enumerate(result.impls):
            last = n == len(result.impls) - 1
            label = kind if n == 0 else ""
            who = Text(impl, style="bold") if impl == "trunkline" else Text(impl)
            if (kind, impl) not in result.runs:
                error = result.errors.get(f"{kind}/{impl}", "not measured")
                table.add_row(label, who, Text(error[:200], style="red"), *[""] * 8,
                              end_section=last)
                continue
            sent = result.total(kind, impl, "sent")
            lost = result.total(kind, impl, "lost")
            jitter = result.median(kind, impl, MEASURES["jitter_us"])
            rate = result.median(kind, impl, MEASURES["mbit_per_s"])
            table.add_row(
                label, who, f"{sent:,}", f"{result.total(kind, impl, 'received'):,}",
                f"{lost:,}", f"{100 * lost / sent if sent else 0:.2f}",
                f"{result.total(kind, impl, 'reordered'):,}",
                f"{result.total(kind, impl, 'duplicated'):,}",
                "-" if jitter is None else f"{jitter:.1f}",
                "-" if rate is None else f"{rate:,.1f}",
                f"{result.total(kind, impl, 'queue_dropped'):,}", end_section=last)
    return table


def udp_chart(result: UdpBenchResult, footnote: str = "") -> Chart:
    panels = []
    for measure, title, unit, higher in (
            ("mbit_per_s", "payload delivered", "Mbit/s", True),
            ("lost_percent", "datagrams lost", "% of sent", False),
            ("jitter_us", "RFC 3550 interarrival jitter", "microseconds", False)):
        pick = MEASURES[measure]
        groups = []
        for kind in result.kinds:
            bars = []
            for impl in result.impls:
                low, high = spread(result.values(kind, impl, pick))
                bars.append(Bar(impl, result.median(kind, impl, pick), low, high))
            note = ratio_note(result.median(kind, "trunkline", pick),
                              result.median(kind, "raw", pick), "raw") if measure == \
                "mbit_per_s" else ""
            groups.append(Group(kind, bars, note))
        panels.append(Panel(title, unit, groups, higher))
    kinds = "; ".join(f"{k} = {KINDS[k]}" for k in result.kinds)
    title = (f"Datagram health: {result.size}-byte datagrams at {_pace(result)}, "
             "trunkline vs raw asyncio")
    return Chart(title, panels, bars=f"median of {result.rounds} interleaved rounds of "
                 f"{result.seconds:g} s", whiskers="min..max of the rounds; ratio = "
                 f"trunkline / raw (medians). {kinds}", footnote=footnote,
                 peers=sorted(result.impls, key=lambda i: i != "trunkline"))


__all__ = ["udp_chart", "udp_table"]
