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
- Shutdown (``close`` then ``wait_closed``, the ``ServiceHost`` way): stop accepting, close
  idle HTTP connections and undecided ones, let requests and byte echoes go on up to
  ``grace`` (default ``config.shutdown_timeout``), abort the rest.
- With a tracer: HTTP connections trace as the HTTP server does; a byte echo records
  ACCEPT, RECEIVE/SEND per read and write, and CLOSE, as ``trunkline.serve`` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Self

from ..address import Address, Identity, TcpAddress, is_datagram, parse_address
from ..aio.datagram_server import datagram_endpoint
from ..aio.servers import run_handler
from ..aio.stream import DEFAULT_LIMIT, Stream, StreamProtocol
from ..errors import UnsupportedError
from ..host import Endpoint, Hook, HostedServer, ServiceHost
from ..server.config import ServerConfig
from ..server.http import HttpServerConnection, ListenContext, ServerState
from ..server.run import DEFAULT_CONFIG, http_endpoint, server_address
from ..server.websocket import handle_websocket
from ..trace.events import Tracer
from ..transport.base import ProtocolFactory
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
        self.task = asyncio.get_running_loop().create_task(
            run_handler(echo_bytes, transport, self, self.state.tracer))  # type: ignore[arg-type]
        self.task.add_done_callback(lambda _: self.state.connections.forget(self))

    def shutdown(self) -> None:
        """A byte echo has no request boundary: it goes on until the grace ends."""

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        if self.task is not None:
            self.task.cancel()


class EchoServer(HostedServer):
    """The echo service on many stream and datagram addresses."""

    def __init__(self, *urls: str | Address, config: ServerConfig = DEFAULT_CONFIG,
                 tracer: Tracer | None = None, limit: int = DEFAULT_LIMIT,
                 sniff_timeout: float = SNIFF_TIMEOUT, hooks: Sequence[Hook] = ()) -> None:
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
        self.host = ServiceHost([], connections=self.state.connections,
                                shutdown_timeout=config.shutdown_timeout, hooks=hooks)

    async def start(self) -> Self:
        if not self.host.endpoints:
            self.host.endpoints = [self._endpoint(a) for a in self.addresses_requested]
        await self.host.start()
        return self

    def _endpoint(self, address: Address) -> Endpoint:
        if is_datagram(address):
            return datagram_endpoint(address, echo_datagram, self.config.listen,
                                     tracer=self.tracer)
        state = self.state
        limit = self.limit
        timeout = self.sniff_timeout
        tls = isinstance(address, TcpAddress) and address.tls
        raw_type = ByteEcho.for_transport(tls)  # chosen once per address (ReadsBothWays)
        sniff_type = SniffProtocol.for_transport(tls)

        def sniffing(context: ListenContext) -> ProtocolFactory:
            def http() -> HttpServerConnection:
                return HttpServerConnection(state, context)

            def raw() -> ByteEcho:
                return raw_type(state, limit)

            return lambda: sniff_type(state, http=http, raw=raw, timeout=timeout)

        return http_endpoint(server_address(address), state, sniffing)


__all__ = ["ByteEcho", "EchoServer", "echo_bytes", "echo_datagram"]
