"""Entry point of the benchmark processes: ``python -m trunkline.bench.worker COMMAND ...``.

    echo --impl raw|trunkline --url URL        echo server; prints "READY <url>", runs until
                                               stdin closes
    ping --raw URL --trunkline URL ...         ping-pong client, alternating between the two
                                               servers; prints one JSON line
    sink --unix PATH --size N                  bulk sink; prints "READY <url>", then one JSON
                                               line once N bytes and EOF have arrived
    send --tcp HOST:PORT --size N              bulk sender; prints one JSON line when done

This module prints because its stdout is the channel to the parent process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from .. import _loop
from . import bulk, raw
from .pingpong import measure, open_trunkline_pinger, serve_trunkline
from .process import READY


class _StdinWatch(asyncio.Protocol):
    """Completes ``closed`` when the parent closes our stdin: the stop signal."""

    def __init__(self, closed: asyncio.Future[None]) -> None:
        self.closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


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
    args = parser.parse_args(argv)

    if args.command == "echo":
        _loop.run(_echo(args.impl, args.url))
    elif args.command == "ping":
        urls = {impl: url for impl, url in (("raw", args.raw), ("trunkline", args.trunkline))
                if url}
        _loop.run(_ping(urls, args.rounds, args.warmup, args.size, args.block, args.dir))
    elif args.command == "sink":
        bulk.sink(args.unix, args.size, lambda url: print(f"{READY} {url}", flush=True),
                  lambda result: print(json.dumps(result), flush=True))
    else:
        host, _, port = args.tcp.rpartition(":")
        result = bulk.send(host.strip("[]"), int(port), args.size)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
