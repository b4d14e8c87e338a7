"""Run one ASGI app on any set of stream addresses: ``AppServer`` and ``serve_app``.

    async with AppServer(app, "tcp://127.0.0.1:8000", "unix:@app") as server:
        print(server.urls)
        await server.serve_forever()          # until request_shutdown() or a signal

Rules:
- ``start``: lifespan startup first, then every address is bound (an error closes the ones
  already bound). ``urls`` are the bound addresses (port 0 resolved).
- Graceful shutdown (``close`` then ``wait_closed``, or ``shutdown``): stop accepting (Unix
  socket files are removed), close idle connections, let requests in flight finish (their
  responses carry ``Connection: close``) up to ``shutdown_timeout``, abort the rest, then
  run lifespan shutdown.
- ``Upgrade: websocket`` requests run the app's ``websocket`` scope (``server.websocket``,
  options through ``websocket_handler(WebSocketOptions(...))``); ``websocket_handler=None``
  leaves them to the app as plain HTTP.
- ``install_signal_handlers``: SIGTERM/SIGINT start a graceful shutdown; a second signal
  aborts what is left. Nothing here prints or exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import TracebackType

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
from ..trace.events import Tracer
from ..transport import Listener, listen
from .config import ServerConfig
from .cycle import ASGIApp
from .http import HttpServerConnection, ListenContext, ServerState, WebSocketHandler, app_tasks
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


class AppServer:
    """One ASGI app served on many stream addresses."""

    def __init__(self, app: ASGIApp, *urls: str | Address,
                 config: ServerConfig = DEFAULT_CONFIG, tracer: Tracer | None = None,
                 websocket_handler: WebSocketHandler | None = handle_websocket) -> None:
        if not urls:
            raise UnsupportedError("AppServer needs at least one address, e.g. "
                                   "'tcp://127.0.0.1:8000'")
        self.addresses_requested = [server_address(u) for u in urls]
        self.config = config
        self.state = ServerState(app, config, tracer, websocket_handler)
        self.lifespan = Lifespan(app, config.lifespan, self.state.app_state)
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

    @property
    def connections(self) -> int:
        return len(self.state.connections)

    async def start(self) -> AppServer:
        self._stop = asyncio.Event()
        await self.lifespan.startup()
        try:
            for address in self.addresses_requested:
                self.listeners.append(await self._listen(address))
        except BaseException:
            for listener in self.listeners:
                listener.close()
            with contextlib.suppress(Exception):
                await self.lifespan.shutdown()
            raise
        return self

    async def _listen(self, address: StreamAddress) -> Listener:
        options = self.config.listen
        kind = address.scheme
        via = None
        if isinstance(address, TcpAddress) and address.tls:
            options = replace(options, ssl=self.config.server_ssl_context())
        elif isinstance(address, FdAddress):
            kind, via = "tcp", "fd"
        state = self.state
        context = ListenContext(kind, format_address(address), via)
        return await listen(address, lambda: HttpServerConnection(state, context), options)

    # ---------------------------------------------------------------- running

    async def serve_forever(self) -> None:
        """Wait until ``request_shutdown`` (or a signal handler) asks to stop, then shut
        down gracefully."""
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

    async def wait_closed(self, grace: float | None = None) -> None:
        """Wait for connections to finish (up to ``grace``, default ``shutdown_timeout``),
        abort the rest, then run lifespan shutdown."""
        self.close()
        if self._finished:
            return
        self._finished = True
        await asyncio.gather(*(listener.wait_closed() for listener in self.listeners),
                             return_exceptions=True)
        grace = self.config.shutdown_timeout if grace is None else grace
        state = self.state
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if state.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await state.all_closed.wait()
        for conn in list(state.connections):
            conn.abort()
        tasks = app_tasks(state)  # apps still running after their response (background)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if state.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):  # connection_lost callbacks after abort
                    await state.all_closed.wait()
        await self.lifespan.shutdown()

    async def shutdown(self, grace: float | None = None) -> None:
        self.close()
        await self.wait_closed(grace)

    async def __aenter__(self) -> AppServer:
        if self._stop is None:
            await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.shutdown()


def install_signal_handlers(server: AppServer,
                            signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
                            ) -> Callable[[], None]:
    """SIGTERM/SIGINT ask ``server`` to shut down gracefully; a second one aborts every
    connection at once. Returns a function that removes the handlers."""
    loop = asyncio.get_running_loop()
    count = 0

    def on_signal() -> None:
        nonlocal count
        count += 1
        if count == 1:
            server.request_shutdown()
            server.close()
        else:
            for conn in list(server.state.connections):
                conn.abort()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal)

    def remove() -> None:
        for sig in signals:
            loop.remove_signal_handler(sig)

    return remove


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
    remove = install_signal_handlers(server) if signals else None
    try:
        if on_ready is not None:
            on_ready(server.urls)
        await server.serve_forever()
    finally:
        if remove is not None:
            remove()
        await server.shutdown()


__all__ = ["AppServer", "install_signal_handlers", "serve_app", "server_address"]
