"""The ASGI ``websocket`` scope, on the connections the HTTP server hands over.

    AppServer(app, "unix:@app", websocket_handler=websocket_handler(WebSocketOptions(...)))

Rules:
- The HTTP server parses the upgrade request and hands the transport over
  (``WebSocketHandoff``). An invalid handshake is answered here (400, 405, 426...) without
  calling the app. Otherwise the app gets ``websocket.connect`` and answers with
  ``websocket.accept`` (``subprotocol``, ``headers``), ``websocket.close`` (403 before
  the accept) or the denial extension ``websocket.http.response.start``/``.body``.
- Messages: ``websocket.receive`` with ``text`` or ``bytes``; ``websocket.send`` likewise;
  ``websocket.close`` (``code``, ``reason``) starts the close handshake and returns at once.
  When the peer is gone, ``receive`` says ``websocket.disconnect`` (``code``, ``reason``)
  and ``send`` raises ``AsgiWebSocketClosed`` (a ``WebSocketClosed`` that is an ``OSError``,
  as ASGI asks).
- The app returning without an answer gets 500; after the accept the connection closes
  with 1000, or 1011 when the app raised.
- Connections count in the server's graceful shutdown: on shutdown open WebSockets are
  closed with 1001 (going away), unaccepted ones are cut.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from functools import lru_cache
from typing import Any

from ..aio.websocket_protocol import WebSocketProtocol
from ..aio.websocket_writes import QUEUE
from ..errors import AsgiWebSocketClosed, WebSocketClosed
from ..protocol.websocket import WebSocketOptions
from ..protocol.websocket_handshake import ServerHandshake
from . import accesslog
from .cycle import Message
from .http import WebSocketHandler, WebSocketHandoff

log = logging.getLogger("trunkline.server")

#: Server defaults: keepalive on (a dead peer is noticed within about 40 s).
SERVER_OPTIONS = WebSocketOptions(ping_interval=20.0, ping_timeout=20.0)
WEBSOCKET_ASGI = {"version": "3.0", "spec_version": "2.4"}
_DENIAL = "websocket.http.response"


class AsgiWebSocket:
    """One upgraded connection running one ASGI ``websocket`` app call."""

    def __init__(self, handoff: WebSocketHandoff, options: WebSocketOptions) -> None:
        self.handoff = handoff
        self.state = handoff.state
        head = handoff.head
        self.start_ns = time.monotonic_ns()
        self.handshake = ServerHandshake(head.method, head.target, head.http_version,
                                         head.headers, options, self.state.server_header)
        transport = handoff.transport
        tracer = self.state.tracer
        conn_id = getattr(transport.get_protocol(), "conn_id", 0) if tracer is not None else 0
        # the transport's own kind: a forwarded scheme (--proxy-headers) says nothing about it
        tls = handoff.scope.get("extensions", {}).get("trunkline.transport", {}).get(
            "kind") == "tls"
        self.ws = WebSocketProtocol.for_transport(tls)(options, "server", tracer=tracer,
                                                       conn_id=conn_id)
        self.ws.on_lost = self._lost
        self.ext: dict[str, Any] = handoff.scope.get("extensions", {}).get(
            "trunkline.transport", {})
        self.accepted = False
        self.responded = False  # the app answered (accept, close or an HTTP response)
        self.connect_sent = False
        self._denial_status = 0
        self._denial_headers: list[tuple[bytes, bytes]] = []
        self._denial_body: list[bytes] = []

    # ---------------------------------------------------------------- start

    def start(self) -> None:
        handoff = self.handoff
        transport = handoff.transport
        if not self.handshake.ok:
            status = self.handshake.response.status_code
            transport.write(self.handshake.rejection())
            transport.close()
            self._log(status, self.handshake.error)
            return
        self.state.connections.add(self)
        self.ws.attach(transport, handoff.data)
        scope: dict[str, Any] = dict(handoff.scope)
        scope["type"] = "websocket"
        scope["asgi"] = WEBSOCKET_ASGI
        scope["scheme"] = "wss" if scope.get("scheme") == "https" else "ws"
        scope.pop("method", None)
        scope["subprotocols"] = self.handshake.subprotocols
        scope["extensions"] = {**scope.get("extensions", {}), _DENIAL: {}}
        self.scope = scope
        self.task = self.ws.loop.create_task(self._run())
        self.task.add_done_callback(self._app_done)

    async def _run(self) -> None:
        app: Any = self.handoff.app
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:  # noqa: BLE001 - logged, then answered on the wire
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise
            if not isinstance(exc, WebSocketClosed):
                log.error("Exception in ASGI application (websocket %s)", self.scope["path"],
                          exc_info=exc)
            self._finish(500, 1011, "internal error")
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            if result is not None:
                log.error("ASGI app returned %r instead of None", result)
            if not self.responded:
                log.error("ASGI app returned without accepting or closing the WebSocket (%s)",
                          self.scope["path"])
            self._finish(500, 1000, "")

    def _finish(self, status: int, code: int, reason: str) -> None:
        """The app is done: answer what it left unanswered, close what it left open."""
        ws = self.ws
        if not self.responded:
            self.responded = True
            self._write_http(status, [(b"content-type", b"text/plain; charset=utf-8")],
                             b"Internal Server Error" if status == 500 else b"")
        elif self._denial_status and not ws.lost:
            ws.transport.close()  # a denial the app never finished
        elif self.accepted and ws.open:
            ws.start_close(code, reason)

    # ---------------------------------------------------------------- ASGI receive/send

    async def receive(self) -> Message:
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        ws = self.ws
        messages = ws.messages
        # WebSocket.recv(), without a coroutine of its own per message
        while not messages:
            try:
                waiter = ws.message_waiter(True)
            except WebSocketClosed as exc:
                return {"type": "websocket.disconnect", "code": exc.code, "reason": exc.reason}
            try:
                data = await waiter
            except BaseException:
                ws.give_back(waiter)
                raise
            if data is not None:  # handed over as it was read: it was never queued
                if type(data) is bytes:
                    return {"type": "websocket.receive", "bytes": data}
                return {"type": "websocket.receive", "text": data}
        # ws.recv_nowait(), inlined: a call less per message
        data = messages.popleft()
        ws.queued -= len(data)
        if ws.paused & QUEUE and ws.queued <= ws.options.max_queue // 4:
            ws.resume_for(QUEUE)
        if type(data) is str:
            return {"type": "websocket.receive", "text": data}
        return {"type": "websocket.receive", "bytes": data}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            if not self.accepted:
                raise RuntimeError("ASGI app sent 'websocket.send' before 'websocket.accept'")
            text = message.get("text")
            data = text if text is not None else message.get("bytes") or b""
            if not self.ws.try_send(data):  # else it was written: no coroutine needed
                try:
                    await self.ws.send(data)
                except WebSocketClosed as exc:  # an OSError for the app, as ASGI asks
                    raise AsgiWebSocketClosed(exc.code, exc.reason, exc.by, exc.detail) from None
        elif kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            code = message.get("code") or 1000
            reason = _close_reason(message.get("reason"))
            if self.accepted:
                self.ws.start_close(code, reason)
            elif not self.responded:
                self.responded = True
                self._write_http(403, [(b"content-type", b"text/plain; charset=utf-8")],
                                 b"Forbidden")
            else:
                raise RuntimeError("ASGI app sent 'websocket.close' after an HTTP response")
        elif kind == "websocket.http.response.start":
            if self.responded:
                raise RuntimeError(f"ASGI app sent {kind!r} after answering the handshake")
            self.responded = True
            self._denial_status = int(message["status"])
            self._denial_headers = list(message.get("headers") or [])
        elif kind == "websocket.http.response.body":
            if not self._denial_status:
                raise RuntimeError(f"ASGI app sent {kind!r} before "
                                   "'websocket.http.response.start'")
            self._denial_body.append(message.get("body", b""))
            if not message.get("more_body", False):
                status, self._denial_status = self._denial_status, 0
                self._write_http(status, self._denial_headers, b"".join(self._denial_body))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a WebSocket")

    def _accept(self, message: Message) -> None:
        if self.responded:
            raise RuntimeError("ASGI app sent 'websocket.accept' after answering already")
        self.responded = self.accepted = True
        subprotocol = message.get("subprotocol")
        headers = message.get("headers") or []
        response, core = self.handshake.accept(subprotocol, headers)
        self.ws.accept(core, response, self.start_ns)
        self._log(101, "")

    def _write_http(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        ws = self.ws
        if not ws.lost:
            ws.transport.write(self.handshake.deny(status, headers, body))
            ws.transport.close()
        self._log(status, "")

    # ---------------------------------------------------------------- server bookkeeping

    def shutdown(self) -> None:
        if self.accepted and self.ws.open:
            self.ws.start_close(1001, "server shutting down")
        elif not self.accepted:
            self.ws.abort()

    def abort(self) -> None:
        self.ws.abort()
        if not self.task.done():
            self.task.cancel()  # shutdown's grace is over

    # The server counts this connection until the transport is gone *and* the app call has
    # returned, so a graceful shutdown waits for the app's cleanup too.

    def _lost(self, ws: WebSocketProtocol) -> None:
        if self.task.done():
            self.state.connections.forget(self)

    def _app_done(self, task: asyncio.Task[None]) -> None:
        if self.ws.lost:
            self.state.connections.forget(self)

    def _log(self, status: int, problem: str) -> None:
        if not self.state.config.access_log or not accesslog.logger.isEnabledFor(logging.INFO):
            return
        self.state.access.flush()  # the connection's earlier requests come first
        head = self.handoff.head
        target = head.target.decode("latin-1")
        transport = accesslog.transport_name(self.ext)
        peer = accesslog.peer_name(self.ext)
        accesslog.logger.info('%s %s "%s %s HTTP/%s" %d 0%s', transport, peer, head.method,
                              target, head.http_version, status,
                              f" ({problem})" if problem else "",
                              extra={"transport": transport, "peer": peer,
                                     "method": head.method, "path": target, "status": status,
                                     "bytes": 0})


def _close_reason(reason: object) -> str:
    """A close reason that fits a close frame (123 bytes of UTF-8), from whatever the app
    gave (FastAPI passes validation errors as a list)."""
    if not reason:
        return ""
    text = reason if isinstance(reason, str) else str(reason)
    data = text.encode()
    if len(data) <= 123:
        return text
    return data[:123].decode(errors="ignore")


def websocket_handler(options: WebSocketOptions | None = None) -> WebSocketHandler:
    """The HTTP server's upgrade hook, running the ASGI ``websocket`` scope with
    ``options`` (limits, keepalive, compression) for every connection; None: the server
    defaults (``SERVER_OPTIONS``) with ``ServerConfig.ws_max_size`` and
    ``ws_max_fragments``."""

    def handle(handoff: WebSocketHandoff) -> None:
        config = handoff.state.config
        chosen = options or _server_options(config.ws_max_size, config.ws_max_fragments)
        AsgiWebSocket(handoff, chosen).start()

    return handle


@lru_cache(maxsize=16)
def _server_options(max_size: int | None, max_fragments: int | None) -> WebSocketOptions:
    if max_size == SERVER_OPTIONS.max_size and max_fragments == SERVER_OPTIONS.max_fragments:
        return SERVER_OPTIONS
    return replace(SERVER_OPTIONS, max_size=max_size, max_fragments=max_fragments)


#: The hook with the default options.
handle_websocket = websocket_handler()

__all__ = ["SERVER_OPTIONS", "AsgiWebSocket", "handle_websocket", "websocket_handler"]
