"""The HTTP/1.1 ASGI server: any ASGI 3 app on any set of stream addresses.

    from trunkline.server import AppServer, ServerConfig, load_app, serve_app

    await serve_app(load_app("hello"), "tcp://127.0.0.1:8000", "unix:@hello")

Scope extension: ``scope["extensions"]["trunkline.transport"]`` describes the connection::

    {"kind": "tcp" | "tls" | "unix" | "fifo",   # for fd:// the inherited socket's kind
     "address": "unix:///run/app.sock",         # the listening address
     "local": "/run/app.sock" | "@name" | "127.0.0.1:8000" | "fifo <read> / <write>",
     "peer": "127.0.0.1:53122" | None,          # None for an unnamed Unix client
     "credentials": {"pid": 4242, "uid": 1000, "gid": 1000} | None,   # Unix and FIFO
     "via": "fd"}                               # only for inherited sockets

``scope["server"]`` is ``(host, port)`` over TCP/TLS and ``(path, None)`` over Unix sockets
(``"@name"`` for abstract ones) and FIFOs; ``scope["client"]`` is ``(host, port)`` over
TCP/TLS and ``None`` otherwise (the peer process is in the extension).
"""

from __future__ import annotations

from ..errors import AppLoadError, LifespanError
from .config import ServerConfig
from .http import (
    HttpServerConnection,
    ListenContext,
    ServerState,
    WebSocketHandler,
    WebSocketHandoff,
)
from .lifespan import Lifespan
from .loader import load_app
from .run import AppServer, install_signal_handlers, serve_app, server_address
from .websocket import websocket_handler

__all__ = [
    "AppLoadError", "AppServer", "HttpServerConnection", "Lifespan", "LifespanError",
    "ListenContext", "ServerConfig", "ServerState", "WebSocketHandler", "WebSocketHandoff",
    "install_signal_handlers", "load_app", "serve_app", "server_address",
]
__all__ += ["websocket_handler"]
