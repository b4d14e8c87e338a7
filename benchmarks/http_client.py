"""HTTP client requests per second: trunkline.Client against the aiohttp and httpx clients.

One fast server (a minimal uvloop + asyncio.Protocol + httptools "hello" server, started by
this script in a child process pinned to CPU 0; or ``--server uvicorn``) and every client in
this process pinned to CPU 1, all on uvloop. Each round measures every client once, side by
side, for sequential keep-alive requests and for N concurrent ones, over TCP and a Unix
socket; the figures are medians over the rounds, with ratios to aiohttp.

    python benchmarks/http_client.py                    # ~1 minute on 2 vCPUs
    python benchmarks/http_client.py --seconds 1 --rounds 2 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

HELLO_BODY = b"Hello, world!"  # the body the three servers send (trunkline's adds a newline)
HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\n" + HELLO_BODY


# --------------------------------------------------------------------------- the server


def serve_hello(uds: str) -> None:
    """Child process: hello server on 127.0.0.1:0 and ``uds``; prints 'READY port'."""
    import httptools
    import uvloop

    class Hello(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                assert self.transport is not None
                self.transport.close()

        def on_message_complete(self) -> None:
            assert self.transport is not None
            self.transport.write(HELLO)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tcp = await loop.create_server(Hello, "127.0.0.1", 0, backlog=1024)
        unix = await loop.create_unix_server(Hello, uds, backlog=1024)
        port = tcp.sockets[0].getsockname()[1]
        print(f"READY {port}", flush=True)
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
        tcp.close()
        unix.close()

    uvloop.run(main())


def serve_uvicorn(uds: str) -> None:
    """Child process: uvicorn (httptools, uvloop) with a raw ASGI hello app on TCP and uds."""
    import uvicorn

    async def app(scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": HELLO_BODY})

    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(uds)
    print(f"READY {tcp.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, loop="uvloop", http="httptools", log_level="error",
                            access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[tcp, unix])


def serve_trunkline(uds: str) -> None:
    """Child process: trunkline's own server with its built-in hello app on TCP and uds."""
    import uvloop

    from trunkline.server import AppServer, load_app

    async def main() -> None:
        async with AppServer(load_app("hello"), "tcp://127.0.0.1:0", f"unix://{uds}") as server:
            print(f"READY {server.urls[0].rsplit(':', 1)[1]}", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    uvloop.run(main())


SERVERS = {"hello": serve_hello, "uvicorn": serve_uvicorn, "trunkline": serve_trunkline}


# --------------------------------------------------------------------------- clients

Call = Callable[[], Awaitable[None]]


async def trunkline_client(url: str, uds: str | None) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import trunkline

    client = trunkline.Client(transport=f"unix://{uds}" if uds else None)

    async def call() -> None:
        response = await client.get(url)
        assert response.status_code == 200 and response.content.startswith(HELLO_BODY)

    return call, client.aclose


async def aiohttp_client(url: str, uds: str | None) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import aiohttp

    connector = aiohttp.UnixConnector(path=uds, limit=100) if uds else \
        aiohttp.TCPConnector(limit=100)
    session = aiohttp.ClientSession(connector=connector)

    async def call() -> None:
        async with session.get(url) as response:
            body = await response.read()
            assert response.status == 200 and body.startswith(HELLO_BODY)

    return call, session.close


async def httpx_client(url: str, uds: str | None) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=uds) if uds else None,
                               limits=httpx.Limits(max_connections=100))

    async def call() -> None:
        response = await client.get(url)
        assert response.status_code == 200 and response.content.startswith(HELLO_BODY)

    return call, client.aclose


async def httpx_on_trunkline(url: str, uds: str | None
                             ) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import httpx

    from trunkline.client import HttpxTransport

    client = httpx.AsyncClient(
        transport=HttpxTransport(transport=f"unix://{uds}" if uds else None))

    async def call() -> None:
        response = await client.get(url)
        assert response.status_code == 200 and response.content.startswith(HELLO_BODY)

    return call, client.aclose


CLIENTS = {
    "trunkline": trunkline_client,
    "aiohttp": aiohttp_client,
    "httpx": httpx_client,
    "httpx+trunkline": httpx_on_trunkline,
}


async def measure(call: Call, seconds: float, concurrency: int) -> tuple[float, float]:
    """Requests per second, and client CPU microseconds per request (steadier than req/s
    on a shared machine: it does not count waiting for the server)."""
    for _ in range(200):  # warm up: connections open, caches filled
        await call()
    count = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            for _ in range(50):
                await call()
            count += 50

    start = time.perf_counter()
    cpu = time.process_time()
    if concurrency == 1:
        await worker()
    else:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start), (time.process_time() - cpu) / count * 1e6


async def run(args: argparse.Namespace, port: int, uds: str) -> None:
    results: dict[tuple[str, str, int], list[float]] = {}
    cpu: dict[tuple[str, str, int], list[float]] = {}
    setups = [("tcp", f"http://127.0.0.1:{port}/", None),
              ("unix", "http://localhost/", uds)]
    names = [n for n in CLIENTS if n in args.clients]
    for _ in range(args.rounds):
        for kind, url, path in setups:
            for concurrency in (1, args.concurrency):
                for name in names:
                    call, close = await CLIENTS[name](url, path)
                    try:
                        rate, cpu_us = await measure(call, args.seconds, concurrency)
                    finally:
                        await close()
                    results.setdefault((kind, name, concurrency), []).append(rate)
                    cpu.setdefault((kind, name, concurrency), []).append(cpu_us)
    print(f"\nreq/s, median of {args.rounds} rounds of {args.seconds} s; server pinned to CPU "
          f"0 ({args.server}), clients on CPU 1, uvloop")
    ratios = [o for o in ("aiohttp", "httpx") if o in names and "trunkline" in names]
    print(f"{'transport':<10}{'concurrency':>12}  " + "".join(f"{n:>17}" for n in names)
          + "".join(f"{'trunkline/' + o:>20}" for o in ratios))
    for kind, _, _ in setups:
        for concurrency in (1, args.concurrency):
            medians = {n: statistics.median(results[(kind, n, concurrency)]) for n in names}
            row = f"{kind:<10}{concurrency:>12}  " + "".join(f"{medians[n]:>17,.0f}" for n in names)
            row += "".join(f"{medians['trunkline'] / medians[o]:>19.2f}x" for o in ratios)
            print(row)
    print("\nclient CPU microseconds per request (median)")
    print(f"{'transport':<10}{'concurrency':>12}  " + "".join(f"{n:>17}" for n in names))
    for kind, _, _ in setups:
        for concurrency in (1, args.concurrency):
            print(f"{kind:<10}{concurrency:>12}  " + "".join(
                f"{statistics.median(cpu[(kind, n, concurrency)]):>17.1f}" for n in names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--server", choices=list(SERVERS), default="hello",
                        help="hello: asyncio.Protocol + httptools (the fastest); uvicorn; "
                             "trunkline: trunkline's own server")
    parser.add_argument("--clients", default=",".join(CLIENTS),
                        help="comma-separated subset of " + ", ".join(CLIENTS))
    parser.add_argument("--serve", metavar="UDS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        SERVERS[args.server](args.serve)
        return

    import uvloop

    tmp = tempfile.mkdtemp(prefix="tl-bench-", dir="/tmp")
    uds = os.path.join(tmp, "hello.sock")
    cpus = os.sched_getaffinity(0)
    pin = ["taskset", "-c", "0"] if len(cpus) > 1 else []
    server = subprocess.Popen(pin + [sys.executable, __file__, "--server", args.server,
                                     "--serve", uds], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("READY"):
            raise SystemExit(f"server did not start: {line!r}")
        port = int(line.split()[1])
        if len(cpus) > 1:
            os.sched_setaffinity(0, {1})
        uvloop.run(run(args, port, uds))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.terminate()
        server.wait(timeout=10)
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
