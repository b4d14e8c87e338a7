"""Entry point of the benchmark processes: ``python -m trunkline.bench.worker COMMAND ...``.

    echo --impl raw|trunkline --url URL        echo server; prints "READY <url>", runs until
                                               stdin closes
    ping --raw URL --trunkline URL ...         ping-pong client, alternating between the two
                                               servers; prints one JSON line
    sink --unix PATH --size N                  bulk sink; prints "READY <url>", then one JSON
                                               line once N bytes and EOF have arrived
    send --tcp HOST:PORT --size N              bulk sender; prints one JSON line when done
    udprecv --impl raw|trunkline --url URL     datagram receiver; prints "READY <url>", then
                                               reads "END <sent> <seconds>" on stdin and
                                               prints one JSON line (its counts)
    udpsend --impl raw|trunkline --url URL ... paced datagram sender; prints one JSON line
    bulksink --impl raw|trunkline --url URL --size N
                                               stream sink for one connection; prints
                                               "READY <url>", then one JSON line once N bytes
                                               came, then runs until stdin closes
    bulksend --impl raw|trunkline --url URL --size N
                                               stream sender; prints one JSON line when done

This module prints because its stdout is the channel to the parent process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from .. import _loop
from . import bulk, raw, stream_bulk
from .pingpong import measure, open_trunkline_pinger, serve_trunkline
from .process import READY
from .udp_peers import run_sender, start_receiver
from .udp_stats import HealthCounter

DRAIN_IDLE = 0.25  # after END: a receiver that got nothing for this long has it all
DRAIN_MAX = 10.0


class _StdinWatch(asyncio.Protocol):
    """Completes ``closed`` when the parent closes our stdin: the stop signal."""

    def __init__(self, closed: asyncio.Future[None]) -> None:
        self.closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _StdinLines(asyncio.Protocol):
    """Lines from the parent on stdin; None once it closes."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.lines.put_nowait(line.decode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.lines.put_nowait(None)


async def _udp_receive(impl: str, url: str) -> None:
    loop = asyncio.get_running_loop()
    counter = HealthCounter()
    bound, dropped, close = await start_receiver(impl, url, counter)
    stdin = _StdinLines()
    await loop.connect_read_pipe(lambda: stdin, sys.stdin)
    print(f"{READY} {bound}", flush=True)
    line = await stdin.lines.get()
    if line is None or not line.startswith("END "):
        close()
        return  # stopped without a run
    _, sent_text, seconds_text = line.split()
    sent = int(sent_text)
    deadline = loop.time() + DRAIN_MAX
    while counter.unique < sent and loop.time() < deadline:
        before = counter.received
        await asyncio.sleep(DRAIN_IDLE)  # what is still in flight or queued arrives meanwhile
        if counter.received == before:
            break
    close()
    result = counter.result(sent, float(seconds_text), dropped())
    print(json.dumps(result.to_json()), flush=True)


async def _bulk_sink(impl: str, url: str, size: int) -> None:
    loop = asyncio.get_running_loop()
    result: asyncio.Future[dict[str, Any]] = loop.create_future()

    def done(report: dict[str, Any]) -> None:
        if not result.done():
            result.set_result(report)

    bound, keep = await stream_bulk.serve_sink(impl, url, size, done)
    closed: asyncio.Future[None] = loop.create_future()
    await loop.connect_read_pipe(lambda: _StdinWatch(closed), sys.stdin)
    print(f"{READY} {bound}", flush=True)
    waits: list[asyncio.Future[Any]] = [result, closed]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if result.done():
        print(json.dumps(result.result()), flush=True)
        await closed
    del keep


async def _echo(impl: str, url: str) -> None:
    loop = asyncio.get_running_loop()
    keep: Any
    if impl == "raw":
        ready_url, keep = await raw.serve(url)
    else:
        ready_url, keep = await serve_trunkline(url)
    closed: asyncio.Future[None] = loop.create_future()
    await loop.connect_read_pipe(lambda: _StdinWatch(closed), sys.stdin)
    print(f"{READY} {ready_url}", flush=True)
    await closed
    del keep


async def _ping(urls: dict[str, str], rounds: int, warmup: int, size: int, block: int,
                client_dir: str) -> None:
    pings: dict[str, raw.Ping] = {}
    error = None
    for impl, url in urls.items():
        try:
            if impl == "raw":
                pings[impl] = await raw.open_pinger(url, size, client_dir)
            else:
                pings[impl] = await open_trunkline_pinger(url, size)
        except Exception as exc:  # reported in the table; the other side is still measured
            error = f"{impl} client: {exc}"
    result: dict[str, Any] = {impl: latency.to_json() for impl, latency in
                              (await measure(pings, rounds, warmup, block)).items()}
    if error is not None:
        result["error"] = error
    print(json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trunkline.bench.worker")
    sub = parser.add_subparsers(dest="command", required=True)
    echo = sub.add_parser("echo")
    echo.add_argument("--impl", choices=("raw", "trunkline"), required=True)
    echo.add_argument("--url", required=True)
    ping = sub.add_parser("ping")
    ping.add_argument("--raw", metavar="URL", help="the raw echo server")
    ping.add_argument("--trunkline", metavar="URL", help="the trunkline echo server")
    ping.add_argument("--block", type=int, default=1_000)
    ping.add_argument("--rounds", type=int, default=20_000)
    ping.add_argument("--warmup", type=int, default=2_000)
    ping.add_argument("--size", type=int, default=64)
    ping.add_argument("--dir", default="/tmp")
    sink = sub.add_parser("sink")
    sink.add_argument("--unix", required=True)
    sink.add_argument("--size", type=int, required=True)
    send = sub.add_parser("send")
    send.add_argument("--tcp", required=True)
    send.add_argument("--size", type=int, required=True)
    udprecv = sub.add_parser("udprecv")
    udprecv.add_argument("--impl", choices=("raw", "trunkline"), required=True)
    udprecv.add_argument("--url", required=True)
    udpsend = sub.add_parser("udpsend")
    udpsend.add_argument("--impl", choices=("raw", "trunkline"), required=True)
    udpsend.add_argument("--url", required=True)
    udpsend.add_argument("--size", type=int, required=True)
    udpsend.add_argument("--pps", type=float, default=0.0)
    udpsend.add_argument("--seconds", type=float, required=True)
    udpsend.add_argument("--dont-fragment", action="store_true")
    for name in ("bulksink", "bulksend"):
        bulk_args = sub.add_parser(name)
        bulk_args.add_argument("--impl", choices=("raw", "trunkline"), required=True)
        bulk_args.add_argument("--url", required=True)
        bulk_args.add_argument("--size", type=int, required=True)
    args = parser.parse_args(argv)

    if args.command == "echo":
        _loop.run(_echo(args.impl, args.url))
    elif args.command == "ping":
        urls = {impl: url for impl, url in (("raw", args.raw), ("trunkline", args.trunkline))
                if url}
        _loop.run(_ping(urls, args.rounds, args.warmup, args.size, args.block, args.dir))
    elif args.command == "udprecv":
        _loop.run(_udp_receive(args.impl, args.url))
    elif args.command == "udpsend":
        result = _loop.run(run_sender(args.impl, args.url, args.size, args.pps, args.seconds,
                                      args.dont_fragment))
        print(json.dumps(result), flush=True)
        if "error" in result:
            sys.exit(1)
    elif args.command == "bulksink":
        _loop.run(_bulk_sink(args.impl, args.url, args.size))
    elif args.command == "bulksend":
        print(json.dumps(_loop.run(stream_bulk.send_bulk(args.impl, args.url, args.size))),
              flush=True)
    elif args.command == "sink":
        bulk.sink(args.unix, args.size, lambda url: print(f"{READY} {url}", flush=True),
                  lambda result: print(json.dumps(result), flush=True))
    else:
        host, _, port = args.tcp.rpartition(":")
        result = bulk.send(host.strip("[]"), int(port), args.size)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
