"""``WebSocket``: one WebSocket connection as the caller sees it: ``send``, ``recv``,
``async for``, ``ping``, ``close``. ``trunkline.websocket`` (the client) returns one.

It wraps the connection's protocol (``websocket_protocol.WebSocketProtocol``), which the event
loop calls and which holds the state; the protocol callbacks are not part of this class.

Rules:
- ``send`` writes a small frame straight to the transport and waits only while the peer is
  not reading (the transport's write buffer is over ``write_limit``).
- ``recv`` returns the next message (``str`` for text, ``bytes`` for binary), from one task
  at a time; it raises ``WebSocketClosed`` once the peer's close frame (or a failure) ends
  the stream of messages and every queued message was taken. ``async for`` stops quietly on
  a normal close (1000, 1001) and raises otherwise.
- ``close`` starts the close handshake and waits for it and the transport (at most
  ``close_timeout``; then the transport is cut). Limits, keepalive and batching are the
  protocol's (see ``websocket_protocol``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..address import Identity
from ..errors import WebSocketClosed, WebSocketHandshakeError
from ..transport.base import local_identity, peer_identity
from .websocket_protocol import Message, WebSocketProtocol
from .websocket_writes import QUEUE


class WebSocket:
    """One WebSocket connection: ``send``, ``recv``, ``async for``, ``ping``, ``close``."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketProtocol) -> None:
        self._protocol = protocol

    # ---------------------------------------------------------------- what it is

    @property
    def subprotocol(self) -> str | None:
        core = self._protocol.core
        return core.subprotocol if core is not None else None

    @property
    def extensions(self) -> list[str]:
        core = self._protocol.core
        return core.extensions if core is not None else []

    @property
    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """Client: the 101 response's headers (lowercased names)."""
        return self._protocol.response_headers

    @property
    def open(self) -> bool:
        return self._protocol.open

    @property
    def close_code(self) -> int | None:
        """The close code: the peer's close frame's, or ours when we failed the connection,
        or 1006 when the connection dropped without one. None while it is not known yet."""
        closed = self._protocol.close_info()
        return None if closed is None else closed.code

    @property
    def close_reason(self) -> str | None:
        closed = self._protocol.close_info()
        return None if closed is None else closed.reason

    @property
    def closed_by(self) -> str | None:
        """"client" or "server": the side that started the close; None if nobody did."""
        core = self._protocol.core
        return None if core is None else core.closed_by

    @property
    def local(self) -> Identity | None:
        try:
            return local_identity(self._protocol.transport)
        except (OSError, ValueError, AttributeError):
            return None

    @property
    def peer(self) -> Identity | None:
        transport = self._protocol.transport
        return peer_identity(transport) if transport is not None else None

    # ---------------------------------------------------------------- messages

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send one text (``str``) or binary message; waits while the peer is not reading."""
        protocol = self._protocol
        if protocol.try_send(message):  # else not open, not simple, or waiting: the core's way
            if protocol.write_paused:
                await protocol.drain()
        else:
            await protocol.send(message)

    async def recv(self) -> Message:
        """The next message: ``str`` for text, ``bytes`` for binary."""
        protocol = self._protocol
        messages = protocol.messages
        while not messages:
            waiter = protocol.message_waiter(True)
            try:
                message = await waiter
            except BaseException:
                protocol.give_back(waiter)
                raise
            if message is not None:  # handed over as it was read: it was never queued
                return message
        # protocol.recv_nowait(), inlined: a call less per message
        message = messages.popleft()
        protocol.queued -= len(message)
        if protocol.paused & QUEUE and protocol.queued <= protocol.options.max_queue // 4:
            protocol.resume_for(QUEUE)
        return message

    # For a layer on top that would otherwise await recv() and send() in its own coroutines:
    # the same steps without the extra coroutine per message.

    def recv_nowait(self) -> Message | None:
        """The next message if one is queued, else None (then await ``message_waiter()``)."""
        return self._protocol.recv_nowait()

    def message_waiter(self) -> asyncio.Future[Message | None]:
        """A future that completes (with None) when a message arrives or no more can come;
        raises ``WebSocketClosed`` when none can come any more. Then call ``recv_nowait``."""
        return self._protocol.message_waiter()

    def try_send(self, message: str | bytes) -> bool:
        """Write ``message`` at once when nothing needs waiting for (open, one small text or
        binary frame, no tracer, the transport under its limit): True. Else False: then
        ``await send(message)``, which waits or raises as it must."""
        return self._protocol.try_send(message)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                message = await self.recv()
            except WebSocketClosed as exc:
                if exc.ok:
                    return
                raise
            yield message

    async def ping(self, data: bytes | None = None) -> float:
        """Send a ping and wait for its pong; returns the round-trip time in seconds."""
        return await self._protocol.ping_waiter(data)

    # ---------------------------------------------------------------- closing

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason`` and wait for the close handshake and the
        transport to finish (at most ``close_timeout``; then the transport is cut)."""
        self._protocol.start_close(code, reason)
        await self.wait_closed()

    def start_close(self, code: int = 1000, reason: str = "") -> None:
        """Send the close frame without waiting for the handshake to finish."""
        self._protocol.start_close(code, reason)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._protocol.closed)

    def abort(self) -> None:
        self._protocol.abort()

    def __repr__(self) -> str:
        state = "open" if self.open else "closed"
        return f"<WebSocket {self._protocol.side} {state} {self.local} -> {self.peer}>"


__all__ = ["Message", "WebSocket", "WebSocketClosed", "WebSocketHandshakeError"]
