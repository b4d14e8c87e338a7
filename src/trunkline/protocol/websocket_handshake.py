"""The WebSocket opening handshake, both sides, on websockets' sans-I/O protocols.

Rules:
- Client: ``client_core`` queues the upgrade request (the URL's Host first, our headers
  after the handshake's own); the 101 and the frames behind it come out of
  ``WebSocketCore.receive_data`` as ``HandshakeDone`` (or ``HandshakeFailed``) then messages.
- Server: our HTTP server parsed the request head; ``ServerHandshake`` checks it (method,
  version, Upgrade/Connection, key, extensions) on creation. The app then answers: ``accept``
  (a subprotocol of its choice, extra headers) gives the 101 and a core in the OPEN state;
  ``deny`` an HTTP response; an invalid request gets ``rejection`` (400, 405, 426, 505...)
  without the app being asked.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from http import HTTPStatus

from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import (
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from websockets.headers import parse_subprotocol
from websockets.http11 import Request
from websockets.protocol import OPEN
from websockets.typing import Subprotocol
from websockets.uri import WebSocketURI

from .websocket import (
    AssemblingClientProtocol,
    AssemblingServerProtocol,
    HeaderPairs,
    WebSocketCore,
    WebSocketOptions,
)

# --------------------------------------------------------------------------- handshakes


def client_core(host: str, target: str, options: WebSocketOptions, *,
                subprotocols: Sequence[str] | None = None,
                headers: Sequence[tuple[str, str]] = (), origin: str | None = None,
                user_agent: str | None = None) -> WebSocketCore:
    """A client core whose handshake request is already queued in ``data_to_send()``.
    ``host`` is the Host header as given (``example.com:8080``), ``target`` the path and
    query. Extra ``headers`` go after the handshake's own."""
    uri = WebSocketURI(False, "localhost", 80, "/", "")
    proto = AssemblingClientProtocol(
        uri, origin=origin,  # type: ignore[arg-type]
        extensions=enable_client_permessage_deflate(None) if options.compression else None,
        subprotocols=[Subprotocol(s) for s in subprotocols] if subprotocols else None,
        max_size=options.max_size)
    request = proto.connect()
    ordered = Headers(Host=host)  # Host first, as sent by browsers and curl
    for name, value in request.headers.raw_items():
        if name.lower() != "host":
            ordered[name] = value
    if user_agent:
        ordered["User-Agent"] = user_agent
    for name, value in headers:
        ordered[name] = value
    request.path = target
    request.headers = ordered
    proto.send_request(request)
    return WebSocketCore(proto, options, "client")


class ServerHandshake:
    """A WebSocket upgrade request as our HTTP server parsed it: checked on creation, then
    answered with ``accept``, ``deny`` or (when ``ok`` is False) ``rejection``."""

    def __init__(self, method: str, target: bytes, http_version: str, headers: HeaderPairs,
                 options: WebSocketOptions, server_header: bytes | None = None) -> None:
        self.options = options
        self.server_header = server_header
        self._headers = Headers()
        for name, value in headers:
            self._headers[name.decode("latin-1")] = value.decode("latin-1")
        request = Request(target.decode("latin-1"), self._headers, method,
                          f"HTTP/{http_version}")
        extensions = enable_server_permessage_deflate(None) if options.compression else None
        # The app chooses the subprotocol (ASGI websocket.accept), so the check picks none.
        self._proto = AssemblingServerProtocol(extensions=extensions,
                                     select_subprotocol=lambda _proto, _offered: None,
                                     max_size=options.max_size)
        self.response = self._proto.accept(request)
        self.ok = self.response.status_code == 101
        self.subprotocols: list[str] = []
        if self.ok:
            for offered in self._headers.get_all("Sec-WebSocket-Protocol"):
                self.subprotocols += parse_subprotocol(offered)

    @property
    def error(self) -> str:
        """What was wrong with the request (empty when ``ok``)."""
        exc = self._proto.handshake_exc
        return "" if exc is None else str(exc)

    def rejection(self) -> bytes:
        """The HTTP error answer to an invalid upgrade request (400, 405, 426, 505...)."""
        assert not self.ok
        response = self.response
        if self.server_header:
            response.headers["Server"] = self.server_header.decode("latin-1")
        return response.serialize()

    def accept(self, subprotocol: str | None = None, headers: Sequence[tuple[bytes, bytes]] = ()
               ) -> tuple[bytes, WebSocketCore]:
        """The 101 answer, and the core for the connection from here on."""
        assert self.ok
        response = self.response
        if self.server_header:
            response.headers["Server"] = self.server_header.decode("latin-1")
        if subprotocol is not None:
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
        for name, value in headers:
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
        shaker = self._proto
        proto = AssemblingServerProtocol(state=OPEN, max_size=self.options.max_size)
        proto.extensions = shaker.extensions
        proto.subprotocol = Subprotocol(subprotocol) if subprotocol is not None else None
        proto.origin = shaker.origin
        return response.serialize(), WebSocketCore(proto, self.options, "server")

    def deny(self, status: int = 403, headers: Sequence[tuple[bytes, bytes]] = (),
             body: bytes = b"") -> bytes:
        """An HTTP response instead of the upgrade (ASGI denial or a close before accept);
        the connection closes after it."""
        return http_response(status, headers, body, self.server_header)


def http_response(status: int, headers: Sequence[tuple[bytes, bytes]] = (), body: bytes = b"",
                  server_header: bytes | None = None) -> bytes:
    """A whole HTTP/1.1 response with Content-Length and ``Connection: close``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1"),
             b"Date: " + email.utils.formatdate(usegmt=True).encode() + b"\r\n"]
    if server_header:
        lines.append(b"Server: " + server_header + b"\r\n")
    skip = {b"content-length", b"connection", b"transfer-encoding"}
    for name, value in headers:
        if name.lower() not in skip:
            lines.append(name + b": " + value + b"\r\n")
    lines.append(b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
    lines.append(body)
    return b"".join(lines)


__all__ = ["ServerHandshake", "client_core", "http_response"]
