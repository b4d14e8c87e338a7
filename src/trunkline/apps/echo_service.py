"""``EchoServer``: one echo service for every protocol, on any set of addresses.

    async with EchoServer("tcp://127.0.0.1:0", "unix:@echo", "udp://127.0.0.1:0") as server:
        print(server.urls)
        await server.serve_forever()

Rules:
- Stream addresses (tcp, tls, unix, fifo, fd): each connection is sniffed (``sniff``). An
  HTTP/1.x request line gets the HTTP server with the built-in ``echo`` app (the request
  back as JSON; ``Upgrade: websocket`` gets every message back). Anything else is the byte
  echo: every byte back as sent; after the peer's EOF the rest, then our EOF (half-close).
  So a raw client that happens to send ``GET / HTTP/1.1`` gets HTTP.
- Datagram addresses (udp, unixgram): every datagram back to its source.
- Shutdown (``close`` then ``wait_closed``): stop accepting, close idle HTTP connections and
  undecided ones, let requests and byte echoes go on up to ``grace``, abort the rest.
- With a tracer: HTTP connections trace as the HTTP server does; a byte echo records
  ACCEPT, RECEIVE/SEND per read and write, and CLOSE, as ``trunkline.serve`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from types import TracebackType

from ..address import (
    Address,
    FdAddress,
    Identity,
    StreamAddress,
    TcpAddress,
    format_address,
    is_datagram,
    parse_address,
)
from ..aio.datagram_server import serve_datagram
from ..aio.stream import DEFAULT_LIMIT, PlainStreamProtocol, Stream, StreamProtocol
from ..errors import UnsupportedError
from ..server.config import ServerConfig
from ..server.http import HttpServerConnection, ListenContext, ServerState, app_tasks
from ..server.run import DEFAULT_CONFIG, server_address
from ..server.websocket import handle_websocket
from ..trace.events import Step, Tracer
from ..transport import Listener, listen
from ..transport.base import local_identity, peer_identity
from .echo import echo_app
from .sniff import SNIFF_TIMEOUT, SniffProtocol

log = logging.getLogger("trunkline.server")


async def echo_bytes(stream: Stream) -> None:
    """Echo bytes until the peer's EOF, then half-close (the caller closes the rest)."""
    while chunk := await stream.read(256 * 1024):
        stream.write(chunk)
        await stream.drain()
    if stream.can_write_eof():
        stream.write_eof()


async def echo_datagram(data: bytes, source: Identity) -> bytes | None:
    """Send each datagram back to where it came from."""
    return data


class ByteEcho(StreamProtocol):
    """A connection decided raw: a ``Stream`` on this protocol runs ``echo_bytes`` in a task.
    It counts in ``state.connections`` until the task is over."""

    def __init__(self, state: ServerState, limit: int) -> None:
        super().__init__(limit)
        self.state = state
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.state.connections.add(self)
        self.task = asyncio.get_running_loop().create_task(self._run(transport))  # type: ignore[arg-type]
        self.task.add_done_callback(lambda _: self.state.forget(self))

    async def _run(self, transport: asyncio.Transport) -> None:
        tracer = self.state.tracer
        conn = 0
        if tracer is not None:
            conn = tracer.new_connection()
            tracer.record(Step.ACCEPT, "server", time.monotonic_ns(), conn,
                          local=str(local_identity(transport)),
                          peer=str(peer_identity(transport)))
        stream = Stream(transport, self, tracer, conn, "server")
        try:
            await echo_bytes(stream)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("byte echo failed for connection from %s", stream.peer)
        finally:
            with contextlib.suppress(Exception):
                stream.close()

    def shutdown(self) -> None:
        """A byte echo has no request boundary: it goes on until the grace ends."""

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        if self.task is not None:
            self.task.cancel()


class PlainByteEcho(ByteEcho, PlainStreamProtocol):
    """``ByteEcho`` for plain sockets (uvloop hands each read over as one ``bytes``)."""


class EchoServer:
    """The echo service on many stream and datagram addresses."""

    def __init__(self, *urls: str | Address, config: ServerConfig = DEFAULT_CONFIG,
                 tracer: Tracer | None = None, limit: int = DEFAULT_LIMIT,
                 sniff_timeout: float = SNIFF_TIMEOUT) -> None:
        if not urls:
            raise UnsupportedError("EchoServer needs at least one address, e.g. "
                                   "'tcp://127.0.0.1:0'")
        self.addresses_requested: list[Address] = []
        for url in urls:
            address = parse_address(url) if isinstance(url, str) else url
            self.addresses_requested.append(
                address if is_datagram(address) else server_address(address))
        self.config = config
        self.tracer = tracer
        self.limit = limit
        self.sniff_timeout = sniff_timeout
        self.state = ServerState(echo_app, config, tracer, handle_websocket)
        self.listeners: list[Listener] = []
        self._stop: asyncio.Event | None = None
        self._closed = False
        self._finished = False

    @property
    def addresses(self) -> list[Address]:
        return [listener.address for listener in self.listeners]

    @property
    def urls(self) -> list[str]:
        return [format_address(a) for a in self.addresses]

    async def start(self) -> EchoServer:
        self._stop = asyncio.Event()
        try:
            for address in self.addresses_requested:
                if is_datagram(address):
                    listener: Listener = await serve_datagram(
                        address, echo_datagram, self.config.listen, tracer=self.tracer)
                else:
                    assert not isinstance(address, str)
                    listener = await self._listen(address)  # type: ignore[arg-type]
                self.listeners.append(listener)
        except BaseException:
            for listener in self.listeners:
                listener.close()
            raise
        return self

    async def _listen(self, address: StreamAddress) -> Listener:
        options = self.config.listen
        kind = address.scheme
        via = None
        tls = isinstance(address, TcpAddress) and address.tls
        if tls:
            options = replace(options, ssl=self.config.server_ssl_context())
        elif isinstance(address, FdAddress):
            kind, via = "tcp", "fd"
        state = self.state
        context = ListenContext(kind, format_address(address), via)
        limit = self.limit
        raw_type = ByteEcho if tls else PlainByteEcho  # as stream_protocol() picks
        timeout = self.sniff_timeout

        def http() -> HttpServerConnection:
            return HttpServerConnection(state, context)

        def raw() -> ByteEcho:
            return raw_type(state, limit)

        return await listen(address, lambda: SniffProtocol(state, http=http, raw=raw,
                                                           timeout=timeout), options)

    # ---------------------------------------------------------------- running

    async def serve_forever(self) -> None:
        """Wait until ``request_shutdown`` asks to stop, then shut down gracefully."""
        assert self._stop is not None, "call start() first"
        await self._stop.wait()
        await self.shutdown()

    def request_shutdown(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def close(self) -> None:
        """Stop accepting and start draining connections (returns at once)."""
        if self._closed:
            return
        self._closed = True
        self.state.draining = True
        for listener in self.listeners:
            listener.close()
        for conn in list(self.state.connections):
            conn.shutdown()
        if not self.state.connections:
            self.state.all_closed.set()

    async def wait_closed(self, grace: float | None = None) -> None:
        """Wait for connections to finish (up to ``grace``, default ``shutdown_timeout``),
        then abort the rest."""
        self.close()
        if self._finished:
            return
        self._finished = True
        await asyncio.gather(*(listener.wait_closed() for listener in self.listeners),
                             return_exceptions=True)
        state = self.state
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.shutdown_timeout if grace is None else grace)
        await _until(state.all_closed.wait, deadline, loop)
        for conn in list(state.connections):
            conn.abort()
        tasks = app_tasks(state)  # HTTP echo calls still running
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        await _until(state.all_closed.wait, loop.time() + 1.0, loop)  # after the aborts

    async def shutdown(self, grace: float | None = None) -> None:
        self.close()
        await self.wait_closed(grace)

    async def __aenter__(self) -> EchoServer:
        if self._stop is None:
            await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.shutdown()


async def _until(wait: Callable[[], Awaitable[object]], deadline: float,
                 loop: asyncio.AbstractEventLoop) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(max(deadline, loop.time())):
            await wait()


__all__ = ["ByteEcho", "EchoServer", "PlainByteEcho", "echo_bytes", "echo_datagram"]
