"""``trunkline bench http`` results as a rich table and as a chart."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .http import LOAD_CPU, SERVER_CPU, HttpBenchResult
from .plot import Bar, Chart, Group, Panel, ratio_note, spread


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _times(value: float | None, bold: bool = False) -> Text:
    if value is None:
        return Text("-")
    return Text(f"{value:.2f}x", style="bold" if bold else "")


def http_table(result: HttpBenchResult) -> Table:
    caption = (f"Hello world, keep-alive, {result.connections} connections; wrk over TCP, "
               f"h2load --h1 over the Unix socket. 1 worker: server on CPU {SERVER_CPU}, load "
               f"on CPU {LOAD_CPU}; more workers: nothing pinned. req/s = median of "
               f"{result.rounds} interleaved rounds of {result.seconds} s (each a fresh "
               f"server, {result.warmup} s warm-up); best = fastest round; (best) = ratio of "
               "the best rounds; cpu = microseconds of server CPU (all its processes) per "
               "request, load = the load generator's, medians; log = each server's default "
               "access log on.")
    table = Table(title="HTTP server requests per second (higher is better)",
                  header_style="bold", caption=caption)
    table.add_column("case", no_wrap=True)
    table.add_column("server", no_wrap=True)
    peers = [p for p in ("uvicorn", "granian") if p in result.servers]
    names = ["req/s", "best"] + [n for p in peers for n in (f"vs {p}", "(best)")]
    for name in (*names, "cpu/req", "load/req", "rounds"):
        table.add_column(name, justify="right", no_wrap=name != "rounds")
    for case in result.cases:
        for n, server in enumerate(result.servers):
            first, last = n == 0, n == len(result.servers) - 1
            label = case.label if first else ""
            who = Text(server, style="bold") if server == "trunkline" else Text(server)
            if (server, case) not in result.runs:
                cell = ("not supported" if (server, case) in result.unsupported else "n/a")
                table.add_row(label, who, Text(cell, style="yellow"),
                              *[""] * (len(names) + 2), end_section=last)
                continue
            cpu, load = result.cpu_us(server, case), result.load_us(server, case)
            ours = server == "trunkline"
            ratios = [_times(result.ratio(server, case, peer, best=best), ours)
                      for peer in peers for best in (False, True)]
            table.add_row(
                label, who, _rate(result.median(server, case)),
                _rate(result.best(server, case)), *ratios,
                "-" if cpu is None else f"{cpu:.1f}", "-" if load is None else f"{load:.1f}",
                ", ".join(f"{r:,.0f}" for r in result.rates(server, case)),
                end_section=last)
    return table


def http_scaling_table(result: HttpBenchResult) -> Table | None:
    """Each server's rate with N workers over its rate with one (when both were measured)."""
    cases = [c for c in result.cases if c.workers != 1 and any(
        result.scaling(s, c) is not None for s in result.servers)]
    if not cases:
        return None
    table = Table(title="Workers: requests per second with N workers / with 1",
                  header_style="bold",
                  caption="median / median, (best / best); 1 worker pinned (server CPU "
                          f"{SERVER_CPU}, load CPU {LOAD_CPU}), N workers and the load "
                          "share every core. ceiling = the most N workers could reach "
                          "over 1 here, from the 1-worker CPU per request of the server (s) "
                          "and the load generator (w): min(N/s, cores/(s+w), 1/w) / "
                          "min(1/s, 1/w); a cheaper server leaves a second worker less")
    table.add_column("case", no_wrap=True)
    for server in result.servers:
        table.add_column(server, justify="right", no_wrap=True,
                         header_style="bold" if server == "trunkline" else "")
    for case in cases:
        cells = []
        for server in result.servers:
            median = result.scaling(server, case)
            best = result.scaling(server, case, best=True)
            ceiling = result.ceiling(server, case)
            limit = "" if ceiling is None else f" of <={ceiling:.2f}x"
            cells.append(Text("-") if median is None or best is None else Text(
                f"{median:.2f}x ({best:.2f}x){limit}",
                style="bold" if server == "trunkline" else ""))
        table.add_row(f"{case.label} / 1w", *cells)
    return table


def http_notes(result: HttpBenchResult) -> list[str]:
    """Why each cell without figures has none, one line per distinct reason."""
    notes: dict[str, list[str]] = {}
    for (server, case), why in result.missing.items():
        notes.setdefault(f"{server}: {why}", []).append(case.label)
    return [f"{what} ({', '.join(labels)})" for what, labels in notes.items()]


def http_chart(result: HttpBenchResult, footnote: str = "") -> Chart:
    groups = []
    for case in result.cases:
        bars = []
        for server in result.servers:
            low, high = spread(result.rates(server, case))
            bars.append(Bar(server, result.median(server, case), low, high,
                            "not supported" if (server, case) in result.unsupported
                            else "n/a"))
        notes = [ratio_note(result.median("trunkline", case), result.median(peer, case), peer)
                 for peer in result.servers if peer != "trunkline"]
        groups.append(Group(case.label, bars, "\n".join(n for n in notes if n)))
    title = (f"HTTP hello world, keep-alive, {result.connections} connections: trunkline "
             "serve vs " + ", ".join(s for s in result.servers if s != "trunkline"))
    return Chart(title, [Panel("requests per second; w = workers, log = access log on",
                               "requests/s", groups)],
                 bars=f"median of {result.rounds} interleaved rounds of {result.seconds} s",
                 whiskers="min..max of the rounds; ratios above the bars are trunkline's "
                          "median / the peer's median",
                 footnote=footnote, peers=result.servers)


__all__ = ["http_chart", "http_notes", "http_scaling_table", "http_table"]
