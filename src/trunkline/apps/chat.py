"""``chat``: a WebSocket broadcast room. Every message one client sends goes to every
connected client (the sender too), text as text, bytes as bytes.

    trunkline serve chat --on unix:@chat --on tcp://127.0.0.1:8000
    trunkline ws ws+unix://%40chat/          (in two terminals)

Any WebSocket path joins the one room; ``GET /`` serves a small browser client.

Rules:
- A slow member never holds up the room: each member has a bounded queue and its own
  sender; a member whose queue is full (``MAX_BACKLOG`` messages behind) is closed with
  1008 ("too slow").
- Members are kept per app instance (``chat_app()`` makes a fresh room).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ..server.cycle import Message, Receive, Scope, Send
from ._respond import respond

MAX_BACKLOG = 256  # messages queued for one member before it is dropped

PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>trunkline chat</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}
#log{border:1px solid #ccc;height:20em;overflow:auto;padding:.5em;white-space:pre-wrap}
#say{width:100%;box-sizing:border-box;margin-top:.5em}</style></head>
<body><h1>trunkline chat</h1><div id="log"></div>
<input id="say" autocomplete="off" placeholder="say something, press Enter" disabled>
<script>
const log = document.getElementById("log"), say = document.getElementById("say");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/");
function show(text) { log.textContent += text + "\\n"; log.scrollTop = log.scrollHeight; }
ws.onopen = () => { say.disabled = false; say.focus(); show("* joined"); };
ws.onmessage = (event) => show(typeof event.data === "string" ? event.data : "(binary)");
ws.onclose = (event) => { say.disabled = true; show("* closed " + event.code); };
say.onkeydown = (event) => {
  if (event.key === "Enter" && say.value) { ws.send(say.value); say.value = ""; }
};
</script></body></html>
"""


class _Member:
    def __init__(self, send: Send) -> None:
        self.send = send
        self.queue: asyncio.Queue[Message | None] = asyncio.Queue(MAX_BACKLOG)
        self.dropped = False

    async def pump(self) -> None:
        """Send queued messages in order; None ends it."""
        while (message := await self.queue.get()) is not None:
            await self.send(message)


class ChatRoom:
    """One broadcast room as an ASGI app."""

    def __init__(self) -> None:
        self.members: set[_Member] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["method"] in ("GET", "HEAD"):
                await respond(send, 200, PAGE, b"text/html; charset=utf-8")
            else:
                await respond(send, 405, b"GET the page, or open a WebSocket\n",
                              b"text/plain; charset=utf-8", [(b"allow", b"GET, HEAD")])
            return
        if scope["type"] != "websocket":
            return
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        member = _Member(send)
        self.members.add(member)
        pump = asyncio.ensure_future(member.pump())
        try:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive" or member.dropped:
                    break
                text = message.get("text")
                out: Message = {"type": "websocket.send", "text": text} if text is not None \
                    else {"type": "websocket.send", "bytes": message.get("bytes") or b""}
                self.broadcast(out)
        finally:
            self.members.discard(member)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await pump

    def broadcast(self, message: Message) -> None:
        for member in list(self.members):
            try:
                member.queue.put_nowait(message)
            except asyncio.QueueFull:
                self._drop(member)

    def _drop(self, member: _Member) -> None:
        member.dropped = True
        self.members.discard(member)
        close: Any = {"type": "websocket.close", "code": 1008, "reason": "too slow"}
        task = asyncio.ensure_future(member.send(close))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


def chat_app() -> ChatRoom:
    """A fresh, empty room."""
    return ChatRoom()


__all__ = ["MAX_BACKLOG", "ChatRoom", "chat_app"]
