"""Run one ASGI app on any set of stream addresses: ``AppServer`` and ``serve_app``.

    async with AppServer(app, "tcp://127.0.0.1:8000", "unix:@app") as server:
        print(server.urls)
        await server.serve_forever()          # until request_shutdown() or a signal

Rules:
- The server is a ``ServiceHost`` (``trunkline.host``) whose endpoints make one
  ``HttpServerConnection`` per accepted connection; the host binds, tracks connections
  and app calls (``state.connections``), drains and aborts.
- ``start``: lifespan startup first, then every address is bound (an error closes the ones
  already bound, then runs lifespan shutdown). ``urls`` are the bound addresses (port 0
  resolved). ``hooks`` are the host's (entered after binding, exited when stopping).
- Graceful shutdown (``close`` then ``wait_closed``, or ``shutdown``): stop accepting (Unix
  socket files are removed), close idle connections, let requests in flight and app calls
  still running after their response finish (responses carry ``Connection: close``) up to
  ``shutdown_timeout``, abort the rest, then run lifespan shutdown.
- ``Upgrade: websocket`` requests run the app's ``websocket`` scope (``server.websocket``,
  options through ``websocket_handler(WebSocketOptions(...))``); ``websocket_handler=None``
  leaves them to the app as plain HTTP.
- ``install_signal_handlers``: SIGTERM/SIGINT start a graceful shutdown; a second signal
  aborts what is left. Nothing here prints or exits.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Self

from ..address import (
    Address,
    FdAddress,
    FifoAddress,
    StreamAddress,
    TcpAddress,
    UnixAddress,
    format_address,
    is_datagram,
    parse_address,
)
from ..errors import AddressError, UnsupportedError
from ..host import STOP_SIGNALS, Endpoint, Hook, HostedServer, ServiceHost, stream_endpoint
from ..trace.events import Tracer
from ..transport.base import ProtocolFactory
from .config import ServerConfig
from .cycle import ASGIApp
from .http import HttpServerConnection, ListenContext, ServerState, WebSocketHandler
from .lifespan import Lifespan
from .websocket import handle_websocket  # the default upgrade hook: the ASGI websocket scope

DEFAULT_CONFIG = ServerConfig()


def server_address(url: str | Address) -> StreamAddress:
    """A listening address from the grammar; ``http://host:port`` and ``https://host:port``
    are accepted as ``tcp://`` and ``tls://``."""
    if isinstance(url, str):
        lowered = url.lower()
        for scheme, replacement in (("http://", "tcp://"), ("https://", "tls://")):
            if lowered.startswith(scheme):
                rest = url[len(scheme):].rstrip("/")
                if "/" in rest:
                    raise AddressError(url, "path", "cannot be served; give host:port only",
                                       "http://127.0.0.1:8000")
                if rest.startswith("[") and "]:" not in rest or \
                        not rest.startswith("[") and ":" not in rest:
                    rest += ":443" if scheme == "https://" else ":80"
                url = replacement + rest
                break
        address = parse_address(url)
    else:
        address = url
    if is_datagram(address) or not isinstance(
            address, TcpAddress | UnixAddress | FifoAddress | FdAddress):
        raise UnsupportedError(f"{format_address(address)} is not a stream address; HTTP "
                               "needs tcp, tls, unix, fifo or fd")
    return address


def http_endpoint(address: StreamAddress, state: ServerState,
                  connection: Callable[[ListenContext], ProtocolFactory] | None = None
                  ) -> Endpoint:
    """``address`` served by the HTTP server of ``state`` (TLS from its config for tls://).
    ``connection(context)`` makes the protocol factory (default: ``HttpServerConnection``);
    the echo service passes one that sniffs first."""
    config = state.config
    options = config.listen
    kind = address.scheme
    via = None
    if isinstance(address, TcpAddress) and address.tls:
        options = replace(options, ssl=config.server_ssl_context())
    elif isinstance(address, FdAddress):
        kind, via = "tcp", "fd"
    context = ListenContext(kind, format_address(address), via)
    if connection is None:
        factory: ProtocolFactory = lambda: HttpServerConnection(state, context)  # noqa: E731
    else:
        factory = connection(context)
    return stream_endpoint(address, factory, options)


class AppServer(HostedServer):
    """One ASGI app served on many stream addresses."""

    def __init__(self, app: ASGIApp, *urls: str | Address,
                 config: ServerConfig = DEFAULT_CONFIG, tracer: Tracer | None = None,
                 websocket_handler: WebSocketHandler | None = handle_websocket,
                 hooks: Sequence[Hook] = ()) -> None:
        if not urls:
            raise UnsupportedError("AppServer needs at least one address, e.g. "
                                   "'tcp://127.0.0.1:8000'")
        self.addresses_requested = [server_address(u) for u in urls]
        self.config = config
        self.state = ServerState(app, config, tracer, websocket_handler)
        self.lifespan = Lifespan(app, config.lifespan, self.state.app_state)
        self.host = ServiceHost([], connections=self.state.connections,
                                shutdown_timeout=config.shutdown_timeout, hooks=hooks)
        self._started = False

    @property
    def connections(self) -> int:
        return len(self.state.connections)

    async def start(self) -> Self:
        """Lifespan startup, then bind every address (an error closes the ones bound and
        runs lifespan shutdown). Idempotent."""
        if self._started:
            return self
        self._started = True
        await self.lifespan.startup()
        try:
            self.host.endpoints = [http_endpoint(a, self.state)
                                   for a in self.addresses_requested]
            await self.host.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.lifespan.shutdown()
            raise
        return self

    async def wait_closed(self, grace: float | None = None) -> None:
        """Stop gracefully (``ServiceHost.wait_closed``), then run lifespan shutdown."""
        await self.host.wait_closed(grace)
        self.state.close()
        await self.lifespan.shutdown()


def install_signal_handlers(server: HostedServer,
                            signals: Sequence[signal.Signals] = STOP_SIGNALS
                            ) -> Callable[[], None]:
    """SIGTERM/SIGINT ask ``server`` to stop gracefully; a second one aborts every
    connection at once (``ServiceHost.install_signal_handlers``). Returns a function that
    removes the handlers."""
    return server.install_signal_handlers(signals)


async def serve_app(app: ASGIApp, *urls: str | Address, config: ServerConfig = DEFAULT_CONFIG,
                    tracer: Tracer | None = None,
                    websocket_handler: WebSocketHandler | None = handle_websocket,
                    on_ready: Callable[[list[str]], None] | None = None,
                    signals: bool = True) -> None:
    """Serve ``app`` on every address until SIGTERM/SIGINT (or cancellation), then shut
    down gracefully. ``on_ready(urls)`` is called once every address is bound."""
    server = AppServer(app, *urls, config=config, tracer=tracer,
                       websocket_handler=websocket_handler)
    await server.start()
    remove = server.install_signal_handlers() if signals else None
    try:
        if on_ready is not None:
            on_ready(server.urls)
        await server.serve_forever()
    finally:
        if remove is not None:
            remove()
        await server.shutdown()


__all__ = ["AppServer", "http_endpoint", "install_signal_handlers", "serve_app",
           "server_address"]
