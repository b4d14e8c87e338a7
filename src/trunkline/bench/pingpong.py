"""Ping-pong latency: ``size``-byte round trips through trunkline against a raw baseline.

For each socket kind and each CPU placement, two runs side by side: the raw baseline
(``raw.py``: plain asyncio Protocols on uvloop) and trunkline (``trunkline.connect`` +
``Stream.send``/``readexactly`` against ``trunkline.serve`` with an echo handler; datagram kinds
through ``open_datagram`` and a ``datagram_handler``). Server and client are separate processes
(``python -m trunkline.bench.worker``) pinned with ``taskset``: "same" puts both on CPU 0,
"cross" puts the server on CPU 0 and the client on CPU 1.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..address import is_datagram, parse_address
from .process import BenchError, Worker, run_worker
from .raw import Ping
from .stats import Latency

#: Kind name -> what it is, in the order tables list them.
KINDS: dict[str, str] = {
    "tcp4": "TCP over 127.0.0.1",
    "tcp6": "TCP over ::1",
    "unix": "Unix stream socket, path",
    "abstract": "Unix stream socket, abstract name",
    "fifo": "named pipe pair",
    "udp": "UDP over 127.0.0.1",
    "unixgram": "Unix datagram socket, path",
    "fd": "inherited TCP listening socket (fd://N)",
}

#: Placement name -> (server CPU, client CPU).
PLACEMENTS: dict[str, tuple[int, int]] = {"same": (0, 0), "cross": (0, 1)}

IMPLS = ("raw", "trunkline")
TARGET_RATIO = 1.2

_names = itertools.count()


@dataclass(frozen=True)
class PingPongResult:
    kind: str
    placement: str
    raw: Latency | None
    trunkline: Latency | None
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        """trunkline p50 / raw p50: the figure the target (<= 1.2) is about."""
        if self.raw is None or self.trunkline is None or self.raw.p50_us <= 0:
            return None
        return self.trunkline.p50_us / self.raw.p50_us

    @property
    def ratio_p99(self) -> float | None:
        if self.raw is None or self.trunkline is None or self.raw.p99_us <= 0:
            return None
        return self.trunkline.p99_us / self.raw.p99_us

    @property
    def meets_target(self) -> bool | None:
        ratio = self.ratio  # judged at the precision shown (2 decimals): noise is larger
        return None if ratio is None else round(ratio, 2) <= TARGET_RATIO


#: progress(done_runs, total_runs, what is running now)
Progress = Callable[[int, int, str], None]


def run_pingpong(kinds: Sequence[str] = tuple(KINDS),
                 placements: Sequence[str] = ("same", "cross"), rounds: int = 20_000,
                 warmup: int = 2_000, size: int = 64, block: int = 1_000,
                 progress: Progress | None = None) -> list[PingPongResult]:
    """Measure every kind x placement. Per case, a raw and a trunkline server run at once and
    one client alternates between them in blocks of ``block`` round trips, so a change in the
    machine's load hits both sides alike."""
    for kind in kinds:
        if kind not in KINDS:
            raise BenchError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    for placement in placements:
        if placement not in PLACEMENTS:
            raise BenchError(f"unknown placement {placement!r}; choose from same, cross")
    total = len(kinds) * len(placements)
    results: list[PingPongResult] = []
    workdir = tempfile.mkdtemp(prefix="tlb-", dir="/tmp")  # short: sun_path has 107 bytes
    try:
        for kind in kinds:
            for placement in placements:
                if progress is not None:
                    progress(len(results), total, f"{kind}, {placement} CPU")
                results.append(_run_case(kind, placement, rounds, warmup, size, block,
                                         workdir))
        if progress is not None:
            progress(total, total, "done")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _run_case(kind: str, placement: str, rounds: int, warmup: int, size: int, block: int,
              workdir: str) -> PingPongResult:
    server_cpu, client_cpu = PLACEMENTS[placement]
    urls: dict[str, str] = {}
    errors: list[str] = []
    with contextlib.ExitStack() as stack:
        for impl in IMPLS:
            name = f"{impl}{next(_names)}"
            pass_fds: tuple[int, ...] = ()
            listener: socket.socket | None = None
            if kind == "fd":
                # The parent binds and listens; the server inherits the descriptor, as it would
                # from systemd. Clients reach it over TCP.
                listener = stack.enter_context(socket.socket(socket.AF_INET,
                                                             socket.SOCK_STREAM))
                listener.bind(("127.0.0.1", 0))
                listener.listen(128)
                pass_fds = (listener.fileno(),)
            server_url = server_url_for(kind, workdir, name,
                                        listener.fileno() if listener is not None else 0)
            try:
                server = stack.enter_context(Worker(["echo", "--impl", impl, "--url",
                                                     server_url], cpu=server_cpu,
                                                    pass_fds=pass_fds))
                urls[impl] = server.wait_ready()
            except BenchError as exc:
                errors.append(f"{impl} server: {exc}")
                continue
            if listener is not None:
                urls[impl] = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
                listener.close()  # the server holds its own copy now
        if not urls:
            return PingPongResult(kind, placement, None, None, "; ".join(errors))
        args = ["ping", "--rounds", str(rounds), "--warmup", str(warmup), "--size", str(size),
                "--block", str(block), "--dir", workdir]
        for impl, url in urls.items():
            args += [f"--{impl}", url]
        try:
            output = run_worker(args, cpu=client_cpu, timeout=60 + rounds * 0.01)
        except BenchError as exc:
            errors.append(f"client: {exc}")
            output = {}
    found = {impl: Latency.from_json(output[impl]) for impl in IMPLS if impl in output}
    if "error" in output:
        errors.append(str(output["error"]))
    return PingPongResult(kind, placement, found.get("raw"), found.get("trunkline"),
                          "; ".join(errors) or None)


def server_url_for(kind: str, workdir: str, name: str, fd: int = 0) -> str:
    return {
        "tcp4": "tcp://127.0.0.1:0",
        "tcp6": "tcp://[::1]:0",
        "unix": f"unix://{workdir}/{name}.sock",
        "abstract": f"unix:@trunkline-bench-{os.getpid()}-{name}",
        "fifo": f"fifo://{workdir}/{name}.fifo",
        "udp": "udp://127.0.0.1:0",
        "unixgram": f"unixgram://{workdir}/{name}.sock",
        "fd": f"fd://{fd}",
    }[kind]


# --------------------------------------------------------------------------- in the workers


async def serve_trunkline(url: str) -> tuple[str, object]:
    """A trunkline echo server on ``url``: returns the URL to connect to and the server."""
    from ..aio.servers import serve
    from ..aio.stream import Stream

    async def echo(stream: Stream) -> None:
        while data := await stream.read():
            await stream.send(data)

    async def echo_datagram(data: bytes, source: object) -> bytes:
        return data

    if is_datagram(parse_address(url)):
        server = await serve(None, url, datagram_handler=echo_datagram)
    else:
        server = await serve(echo, url)
    return server.urls[0], server


async def open_trunkline_pinger(url: str, size: int) -> Ping:
    """A trunkline client on ``url``; the returned coroutine function does one round trip."""
    payload = b"x" * size
    if is_datagram(parse_address(url)):
        from ..aio.datagram import open_datagram

        endpoint = await open_datagram(url)

        async def ping_datagram() -> None:
            await endpoint.send(payload)
            await endpoint.recv()

        return ping_datagram

    from ..aio.servers import connect

    stream = await connect(url)

    async def ping() -> None:
        await stream.send(payload)
        await stream.readexactly(size)

    return ping


async def measure(pings: dict[str, Ping], rounds: int, warmup: int, block: int
                  ) -> dict[str, Latency]:
    """``warmup`` untimed round trips on each connection, then ``rounds`` timed ones each,
    alternating between the connections every ``block`` round trips."""
    for ping in pings.values():
        for _ in range(warmup):
            await ping()
    clock = time.perf_counter_ns
    samples: dict[str, list[int]] = {name: [] for name in pings}
    elapsed = dict.fromkeys(pings, 0)
    blocks: list[int] = []
    done = 0
    while done < rounds:
        n = min(block, rounds - done)
        for name, ping in pings.items():
            for _ in range(min(n, 20)):  # re-warm after the other connection's block
                await ping()
            out = samples[name]
            start = clock()
            for _ in range(n):
                t0 = clock()
                await ping()
                out.append(clock() - t0)
            elapsed[name] += clock() - start
        blocks.append(n)
        done += n
    return {name: Latency.from_samples(samples[name], elapsed[name], blocks)
            for name in pings}


__all__ = ["IMPLS", "KINDS", "PLACEMENTS", "TARGET_RATIO", "PingPongResult", "measure",
           "open_trunkline_pinger", "run_pingpong", "serve_trunkline", "server_url_for"]
