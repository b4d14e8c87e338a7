"""What every connection of one HTTP server shares (``ServerState``), what a listener tells
its connections (``ListenContext``), and what a WebSocket server is handed
(``WebSocketHandoff``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._loop.eager import EagerRunner, returns_none
from ..host import ConnectionRegistry
from ..protocol.http_server_events import HttpLimits, RequestHead
from ..trace.events import Tracer
from .accesslog import AccessLog
from .config import ServerConfig
from .cycle import ASGIApp, Scope
from .forwarded import TrustedProxies
from .writes import WriteBatch


@dataclass
class WebSocketHandoff:
    """What a WebSocket server gets for an ``Upgrade: websocket`` request. The transport's
    reading is paused: call ``transport.set_protocol(yours)`` then ``resume_reading()``.
    ``data`` holds the bytes that arrived after the head; ``scope`` is the HTTP scope of
    the request (change ``type`` and ``scheme`` for the websocket scope)."""

    head: RequestHead
    scope: Scope
    transport: asyncio.Transport
    data: bytes
    app: ASGIApp
    state: ServerState


WebSocketHandler = Callable[[WebSocketHandoff], None]


@dataclass
class ServerState:
    """What every connection of one server shares. ``close()`` when the server has stopped
    (after the drain): the access log is written out, the eager runner's stand-in ends."""

    app: ASGIApp
    config: ServerConfig
    tracer: Tracer | None = None
    websocket_handler: WebSocketHandler | None = None
    app_state: dict[str, Any] = field(default_factory=dict)  # lifespan state, copied per request
    # The host's registry: live connections, and app calls running (``tasks``) so a
    # graceful stop waits for background work after a response too.
    connections: ConnectionRegistry = field(default_factory=ConnectionRegistry)
    limits: HttpLimits = field(init=False)
    server_header: bytes | None = field(init=False)
    proxies: TrustedProxies | None = field(init=False)  # set when proxy headers are on
    access: AccessLog = field(init=False)  # request lines, written in batches
    #: the app is an ``async def`` function that can only return None (``eager.returns_none``):
    #: its calls are stepped without looking at the value
    app_returns_none: bool = field(init=False)
    _runner: EagerRunner | None = field(init=False, default=None)
    _writes: WriteBatch | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.limits = self.config.http_limits()
        self.proxies = (TrustedProxies(self.config.forwarded_allow_ips)
                        if self.config.proxy_headers else None)
        header = self.config.server_header
        self.server_header = header.encode("latin-1") if header else None
        self.access = AccessLog()
        self.app_returns_none = returns_none(self.app)

    def on_loop(self, loop: asyncio.AbstractEventLoop) -> tuple[EagerRunner, WriteBatch]:
        """The eager runner of app calls on ``loop`` (an app call runs inside the read
        callback until it first waits; one that waits goes on in a task counted in
        ``connections.tasks``, which a graceful stop waits for) and the batch that writes
        the answers at the end of the loop pass (``server.writes``)."""
        runner, writes = self._runner, self._writes
        if runner is None or writes is None or runner.loop is not loop:
            runner = self._runner = EagerRunner(loop, self.connections.tasks)
            runner.start()
            writes = self._writes = WriteBatch(loop)
        return runner, writes

    def close(self) -> None:
        """The server has stopped: write out the access log, end the idle stand-in task
        (app calls still running go on)."""
        self.access.flush()
        if self._runner is not None:
            self._runner.stop()


@dataclass(frozen=True)
class ListenContext:
    """What a listener knows about the connections it accepts."""

    kind: str  # "tcp", "tls", "unix", "fifo"; for fd:// the kind of the inherited socket
    url: str  # the listening address, as in the grammar
    via: str | None = None  # "fd" for inherited sockets


__all__ = ["ListenContext", "ServerState", "WebSocketHandler", "WebSocketHandoff"]
