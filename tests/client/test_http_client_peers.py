"""Real HTTP servers for the client tests: uvicorn (TCP and ``uds=``) and aiohttp.web (TCP and
UnixSite), serving the same small app, plus raw asyncio servers that misbehave on purpose.

The app:
    /stream?chunks=N&size=S   a streamed (chunked) body of N chunks of S bytes
    /echo                     the request body back, streamed as it arrives
    /status/CODE              an empty response with that status
    /gate                     waits (bounded) until two requests are inside at once
    anything else             JSON: method, path, query, host, headers, body length and sha256,
                              and the number of connections the server has seen so far
Both servers run in the test's own event loop and are ready when the fixture yields.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import uvicorn
from aiohttp import web
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass
class Stats:
    connections: set[Any] = field(default_factory=set)
    inflight: int = 0
    max_inflight: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    requests: int = 0


@dataclass
class Peer:
    """A running server: ``url`` reaches it (any URL form); ``stats`` counts what it saw."""

    name: str
    url: str  # base URL without a trailing slash
    stats: Stats
    transport: str | None = None  # a transport address, when the URL alone does not reach it
    socket_path: str | None = None


def _summary(method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes,
             stats: Stats) -> bytes:
    lower = {k.lower(): v for k, v in headers}
    return json.dumps({
        "method": method, "path": path, "query": {k: v for k, v in parse_qs(query).items()},
        "host": lower.get("host"), "headers": lower, "body_len": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(), "connections": len(stats.connections),
    }).encode()


async def _gate(stats: Stats) -> None:
    stats.inflight += 1
    stats.max_inflight = max(stats.max_inflight, stats.inflight)
    try:
        if stats.inflight >= 2:
            stats.gate.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stats.gate.wait(), 5)
    finally:
        stats.inflight -= 1


# --------------------------------------------------------------------------- uvicorn (ASGI)


def asgi_app(stats: Stats) -> Callable[..., Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Callable[..., Any],
                  send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        stats.requests += 1
        path = scope["path"]
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        query = scope["query_string"].decode()
        if path == "/echo":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream")]})
            more = True
            while more:
                message = await receive()
                more = message.get("more_body", False)
                await send({"type": "http.response.body", "body": message.get("body", b""),
                            "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if path == "/stream":
            q = parse_qs(query)
            chunks, size = int(q["chunks"][0]), int(q["size"][0])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for i in range(chunks):
                await send({"type": "http.response.body", "body": bytes([65 + i % 26]) * size,
                            "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        if path.startswith("/status/"):
            await send({"type": "http.response.start", "status": int(path[8:]),
                        "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/gate":
            await _gate(stats)
        payload = _summary(scope["method"], path, query, headers, body, stats)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    return app


class _ReadyServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextlib.asynccontextmanager
async def uvicorn_peer(*, uds: str | None = None) -> AsyncIterator[Peer]:
    stats = Stats()

    class Counting(HttpToolsProtocol):  # ASGI has no connection id: count them at the socket
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            stats.connections.add(transport)
            super().connection_made(transport)

    config = uvicorn.Config(asgi_app(stats), host="127.0.0.1", port=0, uds=uds,
                            lifespan="off", log_level="warning", access_log=False,
                            http=Counting, loop="none")
    server = _ReadyServer(config)
    task = asyncio.create_task(server.serve())
    await asyncio.wait({task, asyncio.ensure_future(server.ready.wait())},
                       return_when=asyncio.FIRST_COMPLETED, timeout=10)
    assert server.ready.is_set(), "uvicorn did not start"
    try:
        if uds:
            yield Peer("uvicorn-unix", f"http+unix://{quote(uds, safe='')}", stats,
                       socket_path=uds)
        else:
            port = server.servers[0].sockets[0].getsockname()[1]
            yield Peer("uvicorn-tcp", f"http://127.0.0.1:{port}", stats)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


# --------------------------------------------------------------------------- aiohttp.web


def aiohttp_app(stats: Stats) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        stats.requests += 1
        stats.connections.add(request.transport)
        path = request.path
        if path == "/echo":
            response = web.StreamResponse()
            response.content_type = "application/octet-stream"
            await response.prepare(request)
            async for chunk in request.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
        body = await request.read()
        if path == "/stream":
            chunks, size = int(request.query["chunks"]), int(request.query["size"])
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for i in range(chunks):
                await response.write(bytes([65 + i % 26]) * size)
            await response.write_eof()
            return response
        if path.startswith("/status/"):
            return web.Response(status=int(path[8:]))
        if path == "/gate":
            await _gate(stats)
        return web.Response(body=_summary(request.method, path, request.query_string,
                                          list(request.headers.items()), body, stats),
                            content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@contextlib.asynccontextmanager
async def aiohttp_peer(*, uds: str | None = None, ssl_context: Any = None,
                       host: str = "127.0.0.1") -> AsyncIterator[Peer]:
    stats = Stats()
    runner = web.AppRunner(aiohttp_app(stats), access_log=None)
    await runner.setup()
    try:
        if uds is not None:
            site: web.BaseSite = web.UnixSite(runner, uds, ssl_context=ssl_context)
            await site.start()
            name = uds[1:] if uds.startswith("\0") else uds
            shown = ("@" + name) if uds.startswith("\0") else name
            scheme = "https" if ssl_context else "http"
            yield Peer("aiohttp-unix", f"{scheme}+unix://{quote(shown, safe='')}", stats,
                       socket_path=uds)
        else:
            site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            scheme = "https" if ssl_context else "http"
            shown = f"[{host}]" if ":" in host else host
            yield Peer("aiohttp-tcp", f"{scheme}://{shown}:{port}", stats)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def peer(kind: str, directory: Path) -> AsyncIterator[Peer]:
    """One of: uvicorn-tcp, uvicorn-unix, aiohttp-tcp, aiohttp-unix."""
    if kind == "uvicorn-tcp":
        async with uvicorn_peer() as p:
            yield p
    elif kind == "uvicorn-unix":
        async with uvicorn_peer(uds=str(directory / "uv.sock")) as p:
            yield p
    elif kind == "aiohttp-tcp":
        async with aiohttp_peer() as p:
            yield p
    elif kind == "aiohttp-unix":
        async with aiohttp_peer(uds=str(directory / "aio.sock")) as p:
            yield p
    else:
        raise ValueError(kind)


PEERS = ["uvicorn-tcp", "uvicorn-unix", "aiohttp-tcp", "aiohttp-unix"]


# --------------------------------------------------------------------------- raw servers


@dataclass
class RawServer:
    port: int
    connections: int = 0
    requests: int = 0
    server: asyncio.AbstractServer | None = None


@contextlib.asynccontextmanager
async def raw_server(on_request: Callable[[int, int, bytes], bytes | None]
                     ) -> AsyncIterator[RawServer]:
    """A TCP server that reads request heads (bodies by Content-Length) and answers
    ``on_request(connection_number, request_number_on_it, head)``: bytes to send, or None to
    close the connection without answering."""
    state = RawServer(0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        number = state.connections
        count = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                count += 1
                state.requests += 1
                answer = on_request(number, count, head)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    state.server = server
    try:
        yield state
    finally:
        server.close()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """Accepts, reads, never answers; yields (port, connected event)."""
    connected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        connected.set()
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connected
    finally:
        for w in writers:
            w.close()
        server.close()


HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
