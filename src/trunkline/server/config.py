"""``ServerConfig``: every limit, timeout and option of the HTTP server, with defaults.

The CLI reads its ``serve`` options from these fields, so a default changes in one place.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Literal

from ..errors import HandshakeError
from ..host import DEFAULT_SHUTDOWN_TIMEOUT
from ..protocol.http_server_events import HttpLimits
from ..transport.base import ListenOptions

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class ServerConfig:
    """How the HTTP server behaves. Sizes are bytes, times seconds."""

    # Limits on one request (RFC 9112 framing is always strict; these are sizes).
    max_request_line: int = 8 * KiB  # 414 URI Too Long
    max_header_bytes: int = 16 * KiB  # 431 Request Header Fields Too Large
    max_header_count: int = 100  # 431
    max_body_bytes: int | None = 1 * MiB  # 413 Content Too Large; None: no limit
    # Timeouts.
    header_timeout: float = 30.0  # first byte of a head to its end; trickling does not reset it
    keepalive_timeout: float = 5.0  # idle time allowed between requests on one connection
    # Between two reads of a request body while we wait for it (nginx client_body_timeout):
    # then 408 and close (a plain close once an answer was started).
    body_timeout: float = 60.0
    # Output waiting for a client that takes none of it this long (nginx send_timeout):
    # the connection is aborted.
    send_timeout: float = 60.0
    # graceful shutdown: how long requests in flight may run (one default for every server)
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    # Capacity.
    max_connections: int | None = 10_000  # beyond this a new connection gets 503 and is closed
    body_buffer: int = 64 * KiB  # request body buffered ahead of the app before reads pause
    max_pipelined: int = 32  # parsed requests waiting behind the one in flight
    # WebSocket (the default upgrade handler; websocket_handler(options) overrides it).
    ws_max_size: int | None = 1 * MiB  # largest incoming message; 1009 beyond; None: no limit
    ws_max_fragments: int | None = 4096  # most frames in one incoming message; 1009 beyond
    # ASGI.
    lifespan: Literal["auto", "on", "off"] = "auto"
    root_path: str = ""
    # X-Forwarded-For/-Proto (uvicorn's --proxy-headers): off unless asked; honoured only from
    # peers in forwarded_allow_ips (IPs, networks, "*", or a listening Unix/FIFO path whose
    # peers are trusted). See server/forwarded.py.
    proxy_headers: bool = False
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    # Responses and logging.
    server_header: str | None = "trunkline"
    access_log: bool = True  # one line per request on the "trunkline.access" logger (INFO)
    # TLS for tls:// addresses (scope scheme "https"): a context, or files to build one.
    ssl_context: ssl.SSLContext | None = None
    certfile: str | None = None
    keyfile: str | None = None
    keyfile_password: str | None = None
    ca_certs: str | None = None  # verify client certificates against these (mutual TLS)
    # Socket options for every listener (mode, owner, admit lists, backlog).
    listen: ListenOptions = field(default_factory=ListenOptions)

    def http_limits(self) -> HttpLimits:
        return HttpLimits(max_request_line=self.max_request_line,
                          max_header_bytes=self.max_header_bytes,
                          max_header_count=self.max_header_count,
                          max_body_bytes=self.max_body_bytes)

    def server_ssl_context(self) -> ssl.SSLContext:
        """The context for tls:// listeners: ``ssl_context``, ``listen.ssl``, or one built
        from ``certfile``/``keyfile``. Raises ``HandshakeError`` when there is none."""
        if self.ssl_context is not None:
            return self.ssl_context
        if self.listen.ssl is not None:
            return self.listen.ssl
        if self.certfile is None:
            raise HandshakeError("a tls:// address needs a certificate and key: set "
                                 "ServerConfig(certfile=..., keyfile=...) or --cert/--key")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(self.certfile, self.keyfile, self.keyfile_password)
            if self.ca_certs is not None:
                ctx.load_verify_locations(self.ca_certs)
                ctx.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise HandshakeError(f"cannot load the TLS certificate {self.certfile!r} / key "
                                 f"{self.keyfile!r}: {exc}") from exc
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx


__all__ = ["ServerConfig"]
