"""Helpers for the HTTP server tests: run an app in-process, talk raw HTTP over any kind."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import trunkline
from trunkline.server import AppServer, ServerConfig
from trunkline.server.cycle import ASGIApp


@contextlib.asynccontextmanager
async def running(app: ASGIApp, *urls: str, tracer: Any = None, websocket_handler: Any = None,
                  **config: Any) -> AsyncIterator[AppServer]:
    config.setdefault("access_log", True)
    server = AppServer(app, *(urls or ("tcp://127.0.0.1:0",)), config=ServerConfig(**config),
                       tracer=tracer, websocket_handler=websocket_handler)
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown(grace=2.0)


class Raw:
    """One raw connection: write bytes (whole or one at a time), read until the server
    closes, parse status lines."""

    def __init__(self, stream: trunkline.Stream) -> None:
        self.stream = stream
        self.received = b""
        self.closed = False

    @classmethod
    async def open(cls, url: str) -> Raw:
        return cls(await trunkline.connect(url, timeout=5.0))

    async def send(self, data: bytes, *, bytewise: bool = False) -> None:
        try:
            if bytewise:
                for i in range(len(data)):
                    self.stream.write(data[i:i + 1])
                    await self.stream.drain()
                    if i % 64 == 0:
                        await asyncio.sleep(0)  # let the server see small pieces
            else:
                self.stream.write(data)
                await self.stream.drain()
        except (ConnectionError, OSError):
            pass  # the server closed early (a limit): its answer is still readable

    async def read_until_closed(self, timeout: float = 10.0) -> bytes:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    chunk = await self.stream.read(65536)
                except (ConnectionError, OSError):
                    chunk = b""
                if not chunk:
                    self.closed = True
                    return self.received
                self.received += chunk

    async def read_response(self, timeout: float = 10.0, *, head: bool = False
                            ) -> tuple[int, dict[str, str], bytes]:
        """One complete response (Content-Length or chunked framing; none after HEAD)."""
        async with asyncio.timeout(timeout):
            while b"\r\n\r\n" not in self.received:
                await self._more()
            head_bytes, _, rest = self.received.partition(b"\r\n\r\n")
            status, headers = parse_head(head_bytes)
            if head:
                body = b""
            elif "content-length" in headers:
                size = int(headers["content-length"])
                while len(rest) < size:
                    await self._more()
                    rest = self.received.partition(b"\r\n\r\n")[2]
                body, rest = rest[:size], rest[size:]
            elif headers.get("transfer-encoding") == "chunked":
                while b"0\r\n\r\n" not in rest:
                    await self._more()
                    rest = self.received.partition(b"\r\n\r\n")[2]
                body, rest = decode_chunked(rest)
            else:
                body = b""
            self.received = rest
            return status, headers, body

    async def _more(self) -> None:
        chunk = await self.stream.read(65536)
        if not chunk:
            self.closed = True
            raise ConnectionError(f"closed with {self.received!r} pending")
        self.received += chunk

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.stream.aclose()


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def decode_chunked(data: bytes) -> tuple[bytes, bytes]:
    body = b""
    while True:
        line, _, data = data.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            _, _, data = data.partition(b"\r\n")
            return body, data
        body, data = body + data[:size], data[size + 2:]


def statuses(data: bytes) -> list[int]:
    """Status codes of every response in ``data`` (good enough for tests)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", data)]


async def exchange(url: str, data: bytes, *, bytewise: bool = False) -> tuple[bytes, bool]:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    raw = await Raw.open(url)
    try:
        await raw.send(data, bytewise=bytewise)
        received = await raw.read_until_closed()
        return received, raw.closed
    finally:
        await raw.close()
