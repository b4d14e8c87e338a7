"""Helpers for the WebSocket tests: hand-built frames, a raw WebSocket peer over any
transport, ASGI test apps and a server runner."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
from collections.abc import AsyncIterator
from typing import Any

import trunkline
from trunkline.protocol.websocket import WebSocketOptions
from trunkline.server import AppServer, ServerConfig
from trunkline.server.cycle import ASGIApp
from trunkline.server.websocket import websocket_handler

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True,
          rsv: int = 0, mask_key: bytes | None = None) -> bytes:
    """One frame as bytes; ``rsv`` is the three RSV bits (0-7)."""
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)])
    size = len(payload)
    mbit = 0x80 if mask else 0
    if size < 126:
        head += bytes([mbit | size])
    elif size < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", size)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def parse_frames(data: bytes) -> tuple[list[tuple[bool, int, bytes]], bytes]:
    """Complete unmasked-or-masked frames in ``data`` as (fin, opcode, payload), and the rest."""
    frames = []
    pos = 0
    while len(data) - pos >= 2:
        b1, b2 = data[pos], data[pos + 1]
        size = b2 & 0x7F
        at = pos + 2
        if size == 126:
            if len(data) - at < 2:
                break
            size = struct.unpack("!H", data[at:at + 2])[0]
            at += 2
        elif size == 127:
            if len(data) - at < 8:
                break
            size = struct.unpack("!Q", data[at:at + 8])[0]
            at += 8
        key = None
        if b2 & 0x80:
            if len(data) - at < 4:
                break
            key = data[at:at + 4]
            at += 4
        if len(data) - at < size:
            break
        payload = data[at:at + size]
        if key is not None:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        frames.append((bool(b1 & 0x80), b1 & 0x0F, payload))
        pos = at + size
    return frames, data[pos:]


def close_code_of(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def handshake_request(path: str = "/", host: str = "localhost", extra: str = "") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


class RawPeer:
    """A hand-driven WebSocket client over a trunkline stream: send any bytes, read frames."""

    def __init__(self, stream: trunkline.Stream) -> None:
        self.stream = stream
        self.buffer = b""
        self.frames: list[tuple[bool, int, bytes]] = []
        self.eof = False

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str, path: str = "/", extra: str = "", limit: int = 1 << 20
                   ) -> AsyncIterator[RawPeer]:
        stream = await trunkline.connect(url, timeout=5.0, limit=limit)
        peer = cls(stream)
        try:
            stream.write(handshake_request(path, extra=extra))
            head = await peer.read_head()
            assert head.startswith(b"HTTP/1.1 101"), head
            yield peer
        finally:
            stream.abort()

    async def read_head(self) -> bytes:
        async with asyncio.timeout(5):
            while b"\r\n\r\n" not in self.buffer:
                chunk = await self.stream.read(65536)
                if not chunk:
                    raise EOFError(f"closed before a response head: {self.buffer!r}")
                self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    def send(self, data: bytes) -> None:
        self.stream.write(data)

    async def next_frame(self, timeout: float = 5.0) -> tuple[bool, int, bytes]:
        """The next frame from the server; EOFError if the connection ended first."""
        async with asyncio.timeout(timeout):
            while True:
                frames, self.buffer = parse_frames(self.buffer)
                self.frames += frames
                if self.frames:
                    return self.frames.pop(0)
                if self.eof:
                    raise EOFError("the server closed without another frame")
                try:
                    chunk = await self.stream.read(65536)
                except (ConnectionError, OSError):
                    chunk = b""
                if not chunk:
                    self.eof = True
                self.buffer += chunk

    async def expect_close(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """Skip data frames until the server's close frame; its code and reason."""
        while True:
            fin, opcode, payload = await self.next_frame(timeout)
            if opcode == CLOSE:
                return close_code_of(payload), payload[2:]

    async def wait_eof(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(EOFError):
            while True:
                await self.next_frame(timeout)


# --------------------------------------------------------------------------- ASGI apps


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes every message; the subprotocol ``chat`` is accepted when offered; the path
    ``/deny`` is refused with 403, ``/teapot`` with a 418 denial response, ``/close``
    is accepted then closed with 4001."""
    assert scope["type"] == "websocket"
    message = await receive()
    assert message["type"] == "websocket.connect"
    path = scope["path"]
    if path == "/deny":
        await send({"type": "websocket.close"})
        return
    if path == "/teapot":
        await send({"type": "websocket.http.response.start", "status": 418,
                    "headers": [(b"content-type", b"text/plain"), (b"x-why", b"tea")]})
        await send({"type": "websocket.http.response.body", "body": b"short and ",
                    "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"stout"})
        return
    subprotocol = "chat" if "chat" in scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol,
                "headers": [(b"x-accepted", b"yes")]})
    if path == "/close":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
        return
    if path == "/scope":
        info = {k: scope[k] for k in ("scheme", "path", "query_string", "subprotocols")}
        info["headers"] = {k.decode(): v.decode() for k, v in scope["headers"]}
        await send({"type": "websocket.send", "text": repr(info)})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, *urls: str, options: WebSocketOptions | None = None,
                  tracer: Any = None, **config: Any) -> AsyncIterator[AppServer]:
    config.setdefault("access_log", False)
    handler = websocket_handler(options) if options is not None else websocket_handler()
    server = AppServer(app, *(urls or ("tcp://127.0.0.1:0",)), config=ServerConfig(**config),
                       tracer=tracer, websocket_handler=handler)
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown(grace=2.0)


def ws_url(server: AppServer, path: str = "/", index: int = 0) -> str:
    """The ws URL of the server's ``index``-th address, for any kind."""
    url = server.urls[index]
    scheme, _, rest = url.partition(":")
    if scheme in ("tcp", "tls"):
        return ("wss://" if scheme == "tls" else "ws://") + rest.removeprefix("//") + path
    from urllib.parse import quote

    if scheme == "unix":
        name = rest[2:] if rest.startswith("//") else rest
        return f"ws+unix://{quote(name, safe='')}{path}"
    if scheme == "fifo":
        return f"ws+fifo://{quote(rest.removeprefix('//'), safe='')}{path}"
    raise ValueError(url)


def accept_key(key: str = KEY) -> str:
    import hashlib

    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()
