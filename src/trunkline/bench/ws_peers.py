"""WebSocket echo servers and clients of each implementation, for ``bench/websocket.py``.

    python -m trunkline.bench.ws_peers serve --impl IMPL [--unix PATH]
        echo server on tcp://127.0.0.1:0 (and PATH): prints "READY <json>", runs until stdin
        closes
    python -m trunkline.bench.ws_peers client --impl IMPL --transport tcp|unix --where W
        --inflight N --seconds S --warmup S --size B
        echo client: prints one JSON line (round trips, seconds, CPU seconds)

Each implementation runs its own idiomatic echo (server) and its own client; the client loop
is the same shape for all: ``await send(payload)`` then ``await recv()``, with ``inflight``
messages outstanding. Compression is off everywhere (trunkline ``compression=False``,
websockets ``compression=None``, aiohttp ``compress=False``; picows has none). Keepalive
pings are off everywhere too. Binary messages.

This module prints because its stdout is the channel to the parent process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, cast

from .. import _loop
from .process import READY

IMPLS = ("trunkline", "websockets", "aiohttp", "picows")
TRANSPORTS = ("tcp", "unix")

#: implementation -> transport -> why it cannot run there
UNSUPPORTED: dict[str, dict[str, str]] = {
    "picows": {"unix": "picows sets TCP_NODELAY on every socket, which fails on Unix sockets"},
}

Send = Callable[[bytes], Awaitable[Any]]
Recv = Callable[[], Awaitable[Any]]
Close = Callable[[], Awaitable[Any]]


def available(impl: str) -> str | None:
    """None when ``impl`` can be imported here, else why not."""
    module = {"trunkline": "trunkline", "websockets": "websockets.asyncio.server",
              "aiohttp": "aiohttp", "picows": "picows"}[impl]
    try:
        __import__(module)
    except ImportError as exc:
        return f"{impl} is not installed ({exc}); pip install {impl}"
    return None


# --------------------------------------------------------------------------- servers


async def serve(impl: str, unix_path: str | None) -> tuple[dict[str, str], Close]:
    """An echo server on TCP loopback (and ``unix_path``); returns {transport: where}, where
    is a ws:// URL for TCP and the socket path for Unix, and a closer."""
    return await _SERVERS[impl](unix_path)


async def _serve_trunkline(unix_path: str | None) -> tuple[dict[str, str], Close]:
    from ..apps.websocket_echo import websocket_echo
    from ..protocol.websocket import WebSocketOptions
    from ..server import AppServer, ServerConfig, websocket_handler

    urls = ["tcp://127.0.0.1:0"] + ([f"unix://{unix_path}"] if unix_path else [])
    options = WebSocketOptions(compression=False, ping_interval=None)
    server = AppServer(websocket_echo, *urls,
                       config=ServerConfig(access_log=False, lifespan="off"),
                       websocket_handler=websocket_handler(options))
    await server.start()
    port = server.urls[0].rsplit(":", 1)[1]
    where = {"tcp": f"ws://127.0.0.1:{port}/"}
    if unix_path:
        where["unix"] = unix_path
    return where, server.shutdown


async def _serve_websockets(unix_path: str | None) -> tuple[dict[str, str], Close]:
    from websockets.asyncio.server import ServerConnection, serve, unix_serve

    async def echo(ws: ServerConnection) -> None:
        send = ws.send
        async for message in ws:
            await send(message)

    common: dict[str, Any] = {"compression": None, "ping_interval": None, "max_size": None}
    tcp = await serve(echo, "127.0.0.1", 0, **common)
    servers = [tcp]
    where = {"tcp": f"ws://127.0.0.1:{next(iter(tcp.sockets)).getsockname()[1]}/"}
    if unix_path:
        servers.append(await unix_serve(echo, unix_path, **common))
        where["unix"] = unix_path

    async def close() -> None:
        for server in servers:
            server.close()
            await server.wait_closed()

    return where, close


async def _serve_aiohttp(unix_path: str | None) -> tuple[dict[str, str], Close]:
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, autoping=True)
        await ws.prepare(request)
        send = ws.send_bytes
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                await send(message.data)
            elif message.type == WSMsgType.TEXT:
                await ws.send_str(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    where = {"tcp": f"ws://127.0.0.1:{runner.addresses[0][1]}/"}
    if unix_path:
        await web.UnixSite(runner, unix_path).start()
        where["unix"] = unix_path
    return where, runner.cleanup


async def _serve_picows(unix_path: str | None) -> tuple[dict[str, str], Close]:
    import picows  # type: ignore[import-not-found,unused-ignore]

    class Echo(picows.WSListener):  # type: ignore[misc,unused-ignore]
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type == picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
                return
            transport.send(frame.msg_type, frame.get_payload_as_memoryview())

    server = await picows.ws_create_server(lambda request: Echo(), "127.0.0.1", 0)
    sockets = getattr(server, "sockets", None) or []
    where = {"tcp": f"ws://127.0.0.1:{sockets[0].getsockname()[1]}/"}

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return where, close


_SERVERS: dict[str, Callable[[str | None], Awaitable[tuple[dict[str, str], Close]]]] = {
    "trunkline": _serve_trunkline, "websockets": _serve_websockets,
    "aiohttp": _serve_aiohttp, "picows": _serve_picows,
}


# --------------------------------------------------------------------------- clients


async def connect(impl: str, transport: str, where: str) -> tuple[Send, Recv, Close]:
    """A client of ``impl`` connected to its own server: (send, recv, close)."""
    return await _CLIENTS[impl](transport, where)


async def _trunkline_client(transport: str, where: str) -> tuple[Send, Recv, Close]:
    import trunkline

    url = where if transport == "tcp" else "ws+unix://" + where.replace("/", "%2F") + "/"
    ws = await trunkline.websocket(url, compression=False, max_size=None)
    return ws.send, ws.recv, ws.close


async def _websockets_client(transport: str, where: str) -> tuple[Send, Recv, Close]:
    from websockets.asyncio.client import connect, unix_connect

    common: dict[str, Any] = {"compression": None, "ping_interval": None, "max_size": None}
    if transport == "tcp":
        ws = await connect(where, **common)
    else:
        ws = await unix_connect(where, "ws://localhost/", **common)
    return ws.send, ws.recv, ws.close


async def _aiohttp_client(transport: str, where: str) -> tuple[Send, Recv, Close]:
    import aiohttp

    connector = aiohttp.UnixConnector(where) if transport == "unix" else aiohttp.TCPConnector()
    session = aiohttp.ClientSession(connector=connector)
    url = where if transport == "tcp" else "ws://localhost/"
    ws = await session.ws_connect(url, compress=0, autoping=True, max_msg_size=0)

    async def close() -> None:
        await ws.close()
        await session.close()

    return ws.send_bytes, ws.receive, close


async def _picows_client(transport: str, where: str) -> tuple[Send, Recv, Close]:
    import picows  # type: ignore[import-not-found,unused-ignore]

    loop = asyncio.get_running_loop()
    BINARY = picows.WSMsgType.BINARY

    class Client(picows.WSListener):  # type: ignore[misc,unused-ignore]
        """Received payloads queue up; ``recv`` awaits the next one (a future when none)."""

        def __init__(self) -> None:
            self.messages: deque[bytes] = deque()
            self.waiter: asyncio.Future[None] | None = None

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type == picows.WSMsgType.CLOSE:
                transport.disconnect()
                return
            self.messages.append(frame.get_payload_as_bytes())
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError("picows: disconnected"))

    ws, listener = await picows.ws_connect(Client, where)
    client = cast(Client, listener)

    async def send(payload: bytes) -> None:
        ws.send(BINARY, payload)

    async def recv() -> bytes:
        messages = client.messages
        while not messages:
            client.waiter = loop.create_future()
            await client.waiter
            client.waiter = None
        message: bytes = messages.popleft()
        return message

    async def close() -> None:
        ws.send_close(picows.WSCloseCode.OK)
        ws.disconnect()
        await ws.wait_disconnected()

    return send, recv, close


_CLIENTS: dict[str, Callable[[str, str], Awaitable[tuple[Send, Recv, Close]]]] = {
    "trunkline": _trunkline_client, "websockets": _websockets_client,
    "aiohttp": _aiohttp_client, "picows": _picows_client,
}


async def drive(send: Send, recv: Recv, payload: bytes, inflight: int, seconds: float
                ) -> tuple[int, float, float]:
    """Echo round trips for ``seconds`` with ``inflight`` messages outstanding; returns
    (round trips completed, elapsed seconds, client CPU seconds)."""
    clock = time.perf_counter
    for _ in range(inflight):
        await send(payload)
    count = 0
    cpu = time.process_time()
    start = clock()
    end = start + seconds
    while True:
        await recv()
        count += 1
        if count & 63 == 0 and clock() >= end:
            break
        await send(payload)
    elapsed = clock() - start
    cpu = time.process_time() - cpu
    for _ in range(inflight - 1):  # the ones still on their way
        await recv()
    return count, elapsed, cpu


async def run_client(impl: str, transport: str, where: str, inflight: int, seconds: float,
                     warmup: float, size: int) -> dict[str, Any]:
    send, recv, close = await connect(impl, transport, where)
    payload = os.urandom(size)
    warm = 0
    try:
        if warmup > 0:
            warm = (await drive(send, recv, payload, inflight, warmup))[0] + inflight - 1
        count, elapsed, cpu = await drive(send, recv, payload, inflight, seconds)
        # one more round trip, checked: a connection that died mid-run (aiohttp's receive
        # then returns CLOSED messages at once) must not pass for a fast one
        await send(payload)
        echo = await recv()
        echo = getattr(echo, "data", echo)  # aiohttp: a WSMessage
        if echo != payload:
            raise RuntimeError(f"{impl}: the echo differs from what was sent: {echo!r:.80}")
    finally:
        await close()
    # all: every round trip the server saw, warm-up and the drained ones included
    return {"round_trips": count, "seconds": elapsed, "cpu_seconds": cpu,
            "all_round_trips": warm + count + inflight - 1}


# --------------------------------------------------------------------------- process entry


class _StdinWatch(asyncio.Protocol):
    def __init__(self, closed: asyncio.Future[None]) -> None:
        self.closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _serve_main(impl: str, unix_path: str | None) -> None:
    loop = asyncio.get_running_loop()
    if unix_path and "unix" in UNSUPPORTED.get(impl, {}):
        unix_path = None
    where, close = await serve(impl, unix_path)
    closed: asyncio.Future[None] = loop.create_future()
    await loop.connect_read_pipe(lambda: _StdinWatch(closed), sys.stdin)
    print(f"{READY} {json.dumps(where)}", flush=True)
    await closed
    await close()
    if unix_path:
        with contextlib.suppress(OSError):
            os.unlink(unix_path)  # websockets and aiohttp leave their socket files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trunkline.bench.ws_peers")
    sub = parser.add_subparsers(dest="command", required=True)
    server = sub.add_parser("serve")
    server.add_argument("--impl", choices=IMPLS, required=True)
    server.add_argument("--unix", metavar="PATH")
    client = sub.add_parser("client")
    client.add_argument("--impl", choices=IMPLS, required=True)
    client.add_argument("--transport", choices=TRANSPORTS, required=True)
    client.add_argument("--where", required=True)
    client.add_argument("--inflight", type=int, default=1)
    client.add_argument("--seconds", type=float, default=2.0)
    client.add_argument("--warmup", type=float, default=0.3)
    client.add_argument("--size", type=int, default=32)
    args = parser.parse_args(argv)
    if args.command == "serve":
        _loop.run(_serve_main(args.impl, args.unix))
    else:
        result = _loop.run(run_client(args.impl, args.transport, args.where, args.inflight,
                                      args.seconds, args.warmup, args.size))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()


__all__ = ["IMPLS", "TRANSPORTS", "UNSUPPORTED", "available", "connect", "drive", "serve",
           "run_client"]
