"""``trunkline bench transports`` and ``trunkline bench udp``: the socket kinds themselves."""

from __future__ import annotations

import json

import click

from ..bench.pingpong import PLACEMENTS
from ..bench.relay_bulk import parse_size
from ..bench.report import host_line
from .bench import _console, _split, bench_group, measuring, plot_option, write_plot

TRANSPORTS_EPILOG = """\b
Examples:
  trunkline bench transports
  trunkline bench transports --kinds unix,fifo --rounds 5000 --bulk-size 64M
  trunkline bench transports --placement cross --plot transports.png

\b
Kinds: tcp4, tcp6, unix (path), abstract, fifo (named pipe pair), udp, unixgram; default all
but tcp6. Per kind: the round trip of --size bytes (the pingpong workload: a raw uvloop echo
server and a trunkline one at once, one client alternating between them in blocks; same =
both on CPU 0, cross = client on CPU 1), then bulk throughput, raw and trunkline in
interleaved rounds (sink on CPU 0, sender on CPU 1): streams move --bulk-size bytes over one
connection; udp and unixgram send --datagram-size datagrams as fast as they can for
--datagram-seconds (MiB/s delivered, and the share lost). vs tcp4 compares each kind's raw
bulk rate with TCP loopback's."""

UDP_EPILOG = """\b
Examples:
  trunkline bench udp                                   100 Mbit/s of 1460-byte datagrams
  trunkline bench udp --rate 10000pps --size 64 --seconds 5
  trunkline bench udp --rate max --kinds unixgram
  sudo trunkline bench udp --kinds netns --dont-fragment --size 1472

\b
Kinds: udp (127.0.0.1), unixgram (a socket path), netns (UDP from one network namespace to
another over a veth pair on 198.18.0.0/24; needs root; the namespaces are made for the run
and deleted after it). A receiver (CPU 0) and a sender (CPU 1), raw asyncio or trunkline at
both ends, in interleaved rounds. Each datagram carries a sequence number and its send time;
the receiver counts lost (sent - received once), reordered (came after a higher number),
duplicated, and RFC 3550 interarrival jitter, as iperf3 -u does.
--rate: bits per second of payload (100M, 1G, 500K), datagrams per second (10000pps), or max.
A --size the path does not take is an error (exit 2): over 65,507 bytes for UDP, over the
socket's limit for unixgram, over the path MTU minus 28 with --dont-fragment."""


@bench_group.command("transports", epilog=TRANSPORTS_EPILOG)
@click.option("--kinds", "kinds", multiple=True, metavar="KIND[,KIND...]",
              help="Socket kinds (default: tcp4,unix,abstract,fifo,udp,unixgram).")
@click.option("--placement", type=click.Choice(list(PLACEMENTS)), default="same",
              show_default=True, help="CPUs for the round trips.")
@click.option("--rounds", type=click.IntRange(1), default=20_000, show_default=True,
              help="Timed round trips per side.")
@click.option("--warmup", type=click.IntRange(0), default=2_000, show_default=True,
              help="Untimed round trips first.")
@click.option("--size", type=click.IntRange(1, 65_000), default=64, show_default=True,
              help="Bytes per ping.")
@click.option("--bulk-size", "bulk_size_text", default="256M", show_default=True,
              metavar="SIZE", help="Bytes per stream bulk run, e.g. 1G, 64M.")
@click.option("--bulk-rounds", type=click.IntRange(1), default=3, show_default=True,
              help="Interleaved bulk rounds; the table shows the median.")
@click.option("--datagram-size", type=click.IntRange(16, 65_507), default=8192,
              show_default=True, help="Bytes per datagram in the datagram kinds' bulk runs.")
@click.option("--datagram-seconds", type=click.FloatRange(0.05), default=1.0,
              show_default=True, help="Seconds each datagram bulk run sends.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@plot_option
def transports_command(kinds: tuple[str, ...], placement: str, rounds: int, warmup: int,
                       size: int, bulk_size_text: str, bulk_rounds: int, datagram_size: int,
                       datagram_seconds: float, as_json: bool, plot_path: str | None) -> None:
    """Every socket kind: round-trip latency and bulk throughput, trunkline vs raw."""
    from ..bench.transports import DEFAULT_KINDS, KINDS, run_transports
    from ..bench.transports_report import transports_chart, transports_notes, transports_table

    kind_list = _split(kinds, KINDS, "kind") or list(DEFAULT_KINDS)
    out = _console()
    with measuring("bench transports", plot_path, as_json) as progress:
        result = run_transports(kind_list, placement=placement, rounds=rounds,
                                warmup=warmup, size=size, bulk_size=parse_size(bulk_size_text),
                                bulk_rounds=bulk_rounds, datagram_size=datagram_size,
                                datagram_seconds=datagram_seconds, progress=progress)
    if as_json:
        click.echo(json.dumps({"host": host_line(), **result.to_json()}, indent=2))
    else:
        out.print(f"[dim]{host_line()}[/]")
        out.print(transports_table(result))
        for note in transports_notes(result):
            out.print(f"[red]{note}[/]", soft_wrap=True)
    write_plot("bench transports", plot_path, lambda: transports_chart(result, host_line()))


@bench_group.command("udp", epilog=UDP_EPILOG)
@click.option("--kinds", "kinds", multiple=True, metavar="udp,unixgram,netns",
              help="Kinds (default: udp,unixgram).")
@click.option("--impls", "impls", multiple=True, metavar="raw,trunkline",
              help="Implementations at both ends (default: both).")
@click.option("--rate", default="100M", show_default=True, metavar="RATE",
              help="100M (bits/s of payload), 10000pps (datagrams/s) or max.")
@click.option("--size", type=click.IntRange(16), default=1460, show_default=True,
              help="Bytes per datagram (the payload; at least 16 for the header).")
@click.option("--seconds", type=click.FloatRange(0.05), default=2.0, show_default=True,
              help="Seconds the sender sends, per round.")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True,
              help="Interleaved rounds.")
@click.option("--dont-fragment", is_flag=True,
              help="Set DF (IP_PMTUDISC_DO) on the sender: datagrams over the path MTU fail "
                   "instead of being fragmented (as iperf3 --dont-fragment).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@plot_option
def udp_command(kinds: tuple[str, ...], impls: tuple[str, ...], rate: str, size: int,
                seconds: float, rounds: int, dont_fragment: bool, as_json: bool,
                plot_path: str | None) -> None:
    """Datagram health at a rate: sent, lost, reordered, duplicated, jitter."""
    from ..bench.udp import IMPLS, KINDS, run_udp_bench
    from ..bench.udp_report import udp_chart, udp_table

    kind_list = _split(kinds, KINDS, "kind") or ["udp", "unixgram"]
    impl_list = _split(impls, IMPLS, "implementation") or list(IMPLS)
    out = _console()
    with measuring("bench udp", plot_path, as_json) as progress:
        result = run_udp_bench(kind_list, impl_list, rate=rate, size=size, seconds=seconds,
                               rounds=rounds, dont_fragment=dont_fragment, progress=progress)
    if as_json:
        click.echo(json.dumps({"host": host_line(), **result.to_json()}, indent=2))
    else:
        out.print(f"[dim]{host_line()}[/]")
        out.print(udp_table(result))
    write_plot("bench udp", plot_path, lambda: udp_chart(result, host_line()))
