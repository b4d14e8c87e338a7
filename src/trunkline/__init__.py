"""trunkline: how services talk to each other over sockets.

Every socket kind behind one async API and one URL grammar::

    import trunkline
    async with trunkline.serve(handler, "tcp://127.0.0.1:0", "unix:@app", "fifo:///tmp/f"):
        async with trunkline.connect("unix:@app") as stream:
            ...
    relay = await trunkline.relay.start_relay("tcp://127.0.0.1:8000", "unix:///run/app.sock")
"""

from __future__ import annotations

import importlib
from typing import Any

from .address import (
    Address,
    FdAddress,
    FifoAddress,
    HttpTarget,
    PeerCredentials,
    ServiceAddress,
    SocketIdentity,
    TcpAddress,
    UdpAddress,
    UnixAddress,
    UnixIdentity,
    format_address,
    parse_address,
    parse_http_url,
)
from .aio.datagram import DatagramEndpoint, bind_datagram, open_datagram
from .aio.servers import Server, connect, serve
from .aio.stream import Stream
from .aio.websocket import WebSocket
from .client import (
    CertificateVerifyError,
    Client,
    ConnectTimeoutError,
    Headers,
    HTTPStatusError,
    Limits,
    PoolTimeoutError,
    ReadTimeoutError,
    Response,
    ServerDisconnectedError,
    Timeout,
    WriteTimeoutError,
)
from .client.websocket import websocket
from .errors import TrunklineError, WebSocketClosed, WebSocketHandshakeError
from .protocol.websocket import WebSocketOptions
from .registry import Registration, Resolver, open_registry, register, registration_hook
from .resolve import DnsResolver
from .server import AppServer, ServerConfig, serve_app
from .transport import ConnectOptions, ListenOptions
from .workers import run_workers

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ``trunkline.relay`` after a plain ``import trunkline``, loaded on first use (a fresh
    # import stays lean)
    if name == "relay":
        return importlib.import_module(".relay", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Address", "ConnectOptions", "FdAddress", "FifoAddress", "HttpTarget", "ListenOptions",
    "PeerCredentials", "Server", "ServiceAddress", "SocketIdentity", "Stream", "TcpAddress",
    "TrunklineError", "UdpAddress", "UnixAddress", "UnixIdentity", "connect", "format_address",
    "parse_address", "parse_http_url", "serve",
]
__all__ += ["Client", "HTTPStatusError", "Limits", "Response", "ServerDisconnectedError",
            "Timeout"]
__all__ += ["DatagramEndpoint", "bind_datagram", "open_datagram"]
__all__ += ["CertificateVerifyError", "ConnectTimeoutError", "Headers", "PoolTimeoutError",
            "ReadTimeoutError", "WriteTimeoutError"]
__all__ += ["WebSocket", "WebSocketClosed", "WebSocketHandshakeError", "WebSocketOptions",
            "websocket"]
__all__ += ["AppServer", "ServerConfig", "serve_app"]
__all__ += ["DnsResolver"]
__all__ += ["run_workers"]
__all__ += ["Registration", "Resolver", "open_registry", "register", "registration_hook"]
