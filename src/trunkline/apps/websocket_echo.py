"""The WebSocket side of the built-in ``echo`` app: every message comes back as it was sent
(text as text, bytes as bytes). The first subprotocol the client offers is accepted, so
clients that insist on one get it."""

from __future__ import annotations

from ..server.cycle import Receive, Scope, Send


async def websocket_echo(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    offered = scope.get("subprotocols") or []
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


__all__ = ["websocket_echo"]
