"""``trunkline.websocket(url)``: a WebSocket client over every stream transport.

    async with trunkline.websocket("ws+unix://%2Frun%2Fapp.sock/chat") as ws:
        await ws.send("hello")
        reply = await ws.recv()              # str for text, bytes for binary
        rtt = await ws.ping()                # seconds
        async for message in ws: ...         # ends on a normal close
    ws.close_code, ws.close_reason

Rules:
- Every WebSocket URL form of the address grammar: ``ws://``, ``wss://``, ``ws+unix://``
  (path or ``@abstract``), ``ws+fifo://``, ``wss+unix://`` (TLS over a Unix socket).
  ``transport=`` connects somewhere else while the URL still names the Host header and,
  for wss, the TLS server name.
- ``open_timeout`` bounds connect, TLS and the handshake together (``ConnectTimeoutError``).
  A server that refuses the upgrade raises ``WebSocketHandshakeError`` with its status,
  headers and body.
- ``ws = await trunkline.websocket(url)`` works too; then close it yourself.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Generator, Mapping, Sequence
from types import TracebackType
from typing import Any

from ..address import (
    Address,
    ServiceAddress,
    StreamAddress,
    TcpAddress,
    UdpAddress,
    format_http_url,
    is_datagram,
    parse_address,
    parse_http_url,
)
from ..aio.by_name import RegistryInput, dial, discover, resolver_for
from ..aio.websocket import WebSocket
from ..aio.websocket_protocol import WebSocketProtocol
from ..errors import (
    AddressError,
    HandshakeError,
    TransportError,
    UnsupportedError,
    WebSocketHandshakeError,
)
from ..protocol.websocket import WebSocketOptions
from ..protocol.websocket_handshake import client_core
from ..registry.ranking import Candidate, check_prefer
from ..trace.events import Step, Tracer
from ..transport import ConnectOptions, open_transport
from .connect import http_client_tls_context
from .errors import ConnectTimeoutError, tls_handshake_error

MiB = 1024 * 1024
DEFAULT_MAX_SIZE = 1 * MiB


def _user_agent() -> str:
    from .client import USER_AGENT

    return USER_AGENT


class WebSocketConnect:
    """What ``trunkline.websocket(...)`` returns: ``async with`` it (closes with 1000 at the
    end of the block) or ``await`` it (close it yourself)."""

    def __init__(self, url: str, *, transport: str | Address | None = None,
                 subprotocols: Sequence[str] | None = None,
                 headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
                 origin: str | None = None, max_size: int | None = DEFAULT_MAX_SIZE,
                 max_fragments: int | None = 4096, max_queue: int = 1 * MiB,
                 write_limit: int = 64 * 1024, compression: bool = True,
                 ping_interval: float | None = None, ping_timeout: float | None = 20.0,
                 open_timeout: float | None = 10.0, close_timeout: float = 10.0,
                 verify: bool | str | ssl.SSLContext = True,
                 tracer: Tracer | None = None, registry: RegistryInput = None,
                 prefer: str | None = None) -> None:
        self.url = url
        self.registry = registry
        self.prefer = check_prefer(prefer)
        self.target = parse_http_url(url)
        if not self.target.is_websocket:
            raise AddressError(url, f"scheme {self.target.scheme!r}",
                               "is not a WebSocket scheme (ws, wss, ws+unix, ws+fifo, ws+svc)",
                               "ws://127.0.0.1:8000/chat or ws+unix://%2Frun%2Fapp.sock/chat")
        self.address = self._address(transport)
        self.subprotocols = list(subprotocols) if subprotocols else None
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
        self.headers = [(str(n), str(v)) for n, v in pairs]
        self.origin = origin
        self.options = WebSocketOptions(
            max_size=max_size, max_fragments=max_fragments, compression=compression,
            ping_interval=ping_interval, ping_timeout=ping_timeout,
            close_timeout=close_timeout, max_queue=max_queue, write_limit=write_limit)
        self.open_timeout = open_timeout
        self.verify = verify
        self.tracer = tracer
        self.ws: WebSocket | None = None

    def _address(self, transport: str | Address | None) -> StreamAddress | ServiceAddress:
        given: Address = self.target.transport
        if transport is not None:
            given = parse_address(transport) if isinstance(transport, str) else transport
        if is_datagram(given) or isinstance(given, UdpAddress):
            raise UnsupportedError(f"{transport}: WebSocket needs a stream transport, "
                                   "not datagrams")
        if isinstance(given, ServiceAddress) and self.target.tls:
            raise UnsupportedError(f"{self.url}: wss+svc is not supported: a service that "
                                   "registered tls:// is reached over TLS with ws+svc://")
        return given

    def __await__(self) -> Generator[Any, None, WebSocket]:
        return self.open().__await__()

    async def __aenter__(self) -> WebSocket:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        ws = self.ws
        if ws is not None:
            if isinstance(exc, asyncio.CancelledError):
                ws.abort()
            else:
                await ws.close()

    async def open(self) -> WebSocket:
        """Connect, switch protocols, and return the open WebSocket."""
        target = self.target
        tracer = self.tracer
        conn_id = tracer.new_connection() if tracer is not None else 0
        core = client_core(target.host, target.target, self.options,
                           subprotocols=self.subprotocols, headers=self.headers,
                           origin=self.origin, user_agent=_user_agent())
        address = self.address
        where = format_http_url(target) if address == target.transport else \
            f"{self.url} via {address}"
        tls = target.tls or (isinstance(address, TcpAddress) and address.tls)
        protocol = WebSocketProtocol.for_transport(tls)(self.options, "client", core=core,
                                                        tracer=tracer, conn_id=conn_id)
        server_hostname = _hostname(target.host) if target.tls else (
            address.host if isinstance(address, TcpAddress) else None)
        context = http_client_tls_context(self.verify) if tls else None
        tcp_tls = isinstance(address, TcpAddress)
        if tls and isinstance(address, TcpAddress) and not address.tls:
            address = TcpAddress(address.host, address.port, tls=True)
        options = ConnectOptions(timeout=None, ssl=context if tcp_tls else None,
                                 server_hostname=server_hostname)
        transport: asyncio.Transport | None = None
        try:
            async with asyncio.timeout(self.open_timeout):
                if isinstance(address, ServiceAddress):
                    transport = await self._open_by_name(address, protocol, conn_id)
                else:
                    transport, _ = await open_transport(address, lambda: protocol, options,
                                                        tracer, conn_id)
                if tls and not tcp_tls:
                    transport = await self._start_tls(transport, protocol, context,
                                                      server_hostname, conn_id)
                await protocol.begin_handshake(transport)
        except TimeoutError:
            if transport is not None:
                transport.abort()
            raise ConnectTimeoutError(f"opening the WebSocket {where} took longer than "
                                      f"{self.open_timeout} s (open_timeout)") from None
        except HandshakeError as exc:
            if transport is not None:
                transport.abort()
            if isinstance(exc, WebSocketHandshakeError):
                raise
            raise tls_handshake_error(exc, where) from exc
        except ssl.SSLError as exc:
            if transport is not None:
                transport.abort()
            raise tls_handshake_error(exc, where) from exc
        except BaseException:
            if transport is not None:
                transport.abort()
            raise
        self.ws = ws = WebSocket(protocol)
        return ws

    async def _open_by_name(self, address: ServiceAddress, protocol: WebSocketProtocol,
                            conn_id: int) -> asyncio.Transport:
        """The best address of the service for this caller, the next on a refusal."""
        names = resolver_for(self.registry)
        answer = await discover(names, address.name, prefer=self.prefer, tracer=self.tracer,
                                conn=conn_id)

        async def open_one(candidate: Candidate, left: float | None) -> asyncio.Transport:
            where = candidate.address
            tls = isinstance(where, TcpAddress) and where.tls
            options = ConnectOptions(
                timeout=left, ssl=http_client_tls_context(self.verify) if tls else None,
                server_hostname=where.host if isinstance(where, TcpAddress) and tls else None)
            transport, _ = await open_transport(where, lambda: protocol, options, self.tracer,
                                                conn_id)
            return transport

        transport, _ = await dial(answer, open_one, names, timeout=self.open_timeout,
                                  tracer=self.tracer, conn=conn_id)
        return transport

    async def _start_tls(self, transport: asyncio.Transport, protocol: WebSocketProtocol,
                         context: ssl.SSLContext | None, server_hostname: str | None,
                         conn_id: int) -> asyncio.Transport:
        assert context is not None
        loop = asyncio.get_running_loop()
        tracer = self.tracer
        start = time.monotonic_ns() if tracer is not None else 0
        try:
            new = await loop.start_tls(transport, protocol, context,
                                       server_hostname=server_hostname)
        except OSError as exc:
            if isinstance(exc, TransportError | ssl.SSLError):
                raise
            raise HandshakeError(f"TLS over {self.address} failed: {exc}") from exc
        if new is None:
            raise HandshakeError(f"TLS over {self.address} is not possible on this transport")
        if tracer is not None:
            tracer.record(Step.TLS, "client", start, conn_id,
                          version=new.get_extra_info("ssl_object").version())
        return new


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def websocket(url: str, *, transport: str | Address | None = None,
              subprotocols: Sequence[str] | None = None,
              headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
              origin: str | None = None, max_size: int | None = DEFAULT_MAX_SIZE,
              max_fragments: int | None = 4096, max_queue: int = 1 * MiB,
              write_limit: int = 64 * 1024, compression: bool = True,
              ping_interval: float | None = None, ping_timeout: float | None = 20.0,
              open_timeout: float | None = 10.0, close_timeout: float = 10.0,
              verify: bool | str | ssl.SSLContext = True,
              tracer: Tracer | None = None, registry: RegistryInput = None,
              prefer: str | None = None) -> WebSocketConnect:
    """Open a WebSocket to ``url``: ``async with trunkline.websocket(url) as ws:``.

    ``transport``: connect to this address instead (``unix:///run/app.sock``, ``unix:@name``,
    ``fifo:///path``, ``tcp://host:port``), keeping the URL's Host header.
    ``subprotocols``: offered in order; ``ws.subprotocol`` is the server's choice.
    ``max_size``: largest message accepted (1009 beyond); ``max_fragments``: most frames
    per message. ``max_queue``: received bytes buffered before reading pauses.
    ``write_limit``: ``send`` waits while more than this is unsent.
    ``compression``: offer permessage-deflate. ``ping_interval``/``ping_timeout``: keepalive
    (a missing pong closes with 1011). ``verify``: True, a CA file, an SSLContext, or False.
    ``ws+svc://NAME/path``: the service's best address for this caller (``registry``: a
    registry URL or a ``trunkline.Resolver``; ``prefer``: a socket kind to put first).
    """
    return WebSocketConnect(url, transport=transport, subprotocols=subprotocols,
                            headers=headers, origin=origin, max_size=max_size,
                            max_fragments=max_fragments, max_queue=max_queue,
                            write_limit=write_limit, compression=compression,
                            ping_interval=ping_interval, ping_timeout=ping_timeout,
                            open_timeout=open_timeout, close_timeout=close_timeout,
                            verify=verify, tracer=tracer, registry=registry, prefer=prefer)


__all__ = ["WebSocket", "WebSocketConnect", "websocket"]
