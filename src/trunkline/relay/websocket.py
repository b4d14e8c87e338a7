"""WebSocket <-> byte stream bridges (websocat's ``ws-l:ADDR tcp:ADDR`` and
``tcp-l:ADDR ws://...``), on any stream kind at either end.

    # WebSocket clients in, a TCP connection per client out
    relay = await start_websocket_relay("ws://127.0.0.1:8080/", "tcp://127.0.0.1:5678")
    # raw clients in, a WebSocket per client out
    relay = await start_websocket_relay("unix:///tmp/in.sock", "ws://127.0.0.1:8080/chat")

Rules:
- Messages <-> byte chunks: each WebSocket message (binary as is, text as UTF-8) is written
  to the stream whole; each chunk read from the stream goes out as one binary message. No
  framing is added or removed: the stream side sees the message bytes run together.
- Close <-> EOF: a WebSocket close (either side) half-closes the stream after what was
  queued (or closes it where it cannot half-close); EOF from the stream closes the
  WebSocket with 1000. A stream that breaks closes the WebSocket with 1011; a WebSocket
  that breaks aborts the stream.
- The WebSocket listening side is trunkline's HTTP server with a bridge app: a ``ws://``
  or ``wss://`` URL (``ws+unix://%2Fpath.sock/``...) names where to listen; a path other
  than ``/`` is the only path served (others get 404), plain HTTP gets 426. The raw side
  is ``trunkline.serve`` with a handler that dials the ``ws://`` target per connection.
- A target that cannot be reached: the WebSocket is refused (403 before accepting) or the
  raw client closed, and one line is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import MutableMapping
from dataclasses import replace
from typing import Any

from ..address import (
    Address,
    HttpTarget,
    TcpAddress,
    format_address,
    is_datagram,
    parse_address,
    parse_http_url,
)
from ..aio.servers import Server, connect, serve
from ..aio.stream import Stream
from ..client.websocket import websocket
from ..errors import TrunklineError, UnsupportedError, WebSocketClosed
from ..host import DEFAULT_SHUTDOWN_TIMEOUT
from ..server.config import ServerConfig
from ..server.run import AppServer
from ..transport import ConnectOptions, ListenOptions
from .stream import OnData

log = logging.getLogger("trunkline.relay")

WS_SCHEMES = ("ws://", "wss://", "ws+", "wss+")


def is_websocket_url(text: str) -> bool:
    return text.lower().startswith(WS_SCHEMES)


def listen_address(target: HttpTarget) -> Address:
    """Where a ``ws://`` listening URL listens (``wss://``: TLS)."""
    address = target.transport
    if not isinstance(address, Address) or address.scheme == "svc":
        raise UnsupportedError("a WebSocket relay listens on a socket address, not a "
                               "service name")
    if target.tls:
        if not isinstance(address, TcpAddress):
            raise UnsupportedError("wss:// listens on TCP only; for TLS over another kind "
                                   "put a tls:// relay in front")
        address = replace(address, tls=True)
    return address


class _Counter:
    def __init__(self, on_data: OnData | None, number: int) -> None:
        self.on_data = on_data
        self.number = number
        self.sent = {True: 0, False: 0}

    def __call__(self, up: bool, data: bytes) -> None:
        if self.on_data is not None:
            self.on_data(self.number, up, memoryview(data), self.sent[up])
        self.sent[up] += len(data)


def _as_bytes(message: str | bytes) -> bytes:
    return message.encode() if isinstance(message, str) else message


def _end_stream(stream: Stream) -> None:
    if stream.can_write_eof() and not stream.transport.is_closing():
        stream.write_eof()
    else:
        stream.close()


class _BridgeApp:
    """ASGI app: each WebSocket accepted is bridged to a new stream to ``target``."""

    def __init__(self, target: Address, path: str, options: ConnectOptions,
                 on_data: OnData | None) -> None:
        self.target = target
        self.target_url = format_address(target)
        self.path = path
        self.options = options
        self.on_data = on_data
        self.numbers = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            status, text = (426, b"a WebSocket relay: connect with a WebSocket client\n")
            if self.path != "/" and scope["path"] != self.path:
                status, text = 404, b"not the relay's path\n"
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"text/plain"),
                                    (b"upgrade", b"websocket")]})
            await send({"type": "http.response.body", "body": text})
            return
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        if self.path != "/" and scope["path"] != self.path:
            await send({"type": "websocket.close", "code": 1008})
            return
        self.numbers += 1
        count = _Counter(self.on_data, self.numbers)
        try:
            stream = await connect(self.target, timeout=self.options.timeout,
                                   options=self.options)
        except (TrunklineError, OSError) as exc:
            log.warning("WebSocket %d: cannot reach %s: %s", count.number, self.target_url,
                        exc)
            await send({"type": "websocket.close", "code": 1011})
            return
        await send({"type": "websocket.accept"})
        to_client = asyncio.ensure_future(self._stream_to_ws(stream, send, count))
        try:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    break
                data = message.get("bytes") or (message.get("text") or "").encode()
                count(True, data)
                stream.write(data)
                await stream.drain()
            _end_stream(stream)
            await asyncio.wait_for(asyncio.shield(to_client), 10.0)
        except (TrunklineError, OSError, TimeoutError):
            stream.abort()
        finally:
            to_client.cancel()
            stream.close()
            log.info("WebSocket %d closed: %s -> %s, %d bytes up, %d bytes down",
                     count.number, scope.get("client"), self.target_url, count.sent[True],
                     count.sent[False])

    async def _stream_to_ws(self, stream: Stream, send: Any, count: _Counter) -> None:
        code = 1000
        try:
            while data := await stream.read():
                count(False, data)
                await send({"type": "websocket.send", "bytes": data})
        except Exception:  # the stream broke, or the WebSocket is gone already
            code = 1011
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code})


async def _bridge_to_websocket(stream: Stream, url: str, count: _Counter,
                               verify: Any) -> None:
    """One raw client: open a WebSocket to ``url`` and bridge it."""
    try:
        ws = await websocket(url, verify=verify)
    except (TrunklineError, OSError) as exc:
        log.warning("connection %d: cannot open %s: %s", count.number, url, exc)
        stream.close()
        return

    async def to_stream() -> None:
        try:
            while True:
                data = _as_bytes(await ws.recv())
                count(False, data)
                stream.write(data)
                await stream.drain()
        except WebSocketClosed as closed:
            if closed.code in (1000, 1001):
                _end_stream(stream)
            else:
                stream.abort()

    receiving = asyncio.ensure_future(to_stream())
    try:
        while data := await stream.read():
            count(True, data)
            await ws.send(data)
        await ws.close(1000)
        await asyncio.wait_for(asyncio.shield(receiving), 10.0)
    except WebSocketClosed:
        await receiving
    except (TrunklineError, OSError, TimeoutError):
        await ws.close(1011)
    finally:
        receiving.cancel()
        stream.close()
        log.info("connection %d closed: %s -> %s, %d bytes up, %d bytes down", count.number,
                 stream.peer, url, count.sent[True], count.sent[False])


async def start_websocket_relay(listen_url: str, target_url: str, *,
                                listen_options: ListenOptions = ListenOptions(),
                                connect_options: ConnectOptions = ConnectOptions(),
                                on_data: OnData | None = None,
                                config: ServerConfig | None = None,
                                shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
                                ) -> AppServer | Server:
    """A WebSocket listener bridged to a stream target, or a stream listener bridged to a
    WebSocket target (exactly one of the two URLs is ``ws://``/``wss://``). Returns the
    started server (``urls``, ``serve_forever``, ``aclose``)."""
    if is_websocket_url(listen_url) == is_websocket_url(target_url):
        raise UnsupportedError("a WebSocket relay has a ws:// URL on one side and a stream "
                               "address on the other (ws to ws: relay the stream under it)")
    if is_websocket_url(listen_url):
        where = parse_http_url(listen_url)
        target = parse_address(target_url)
        if is_datagram(target):
            raise UnsupportedError(f"{target_url} is a datagram address; a WebSocket is "
                                   "bridged to a stream (tcp, tls, unix, fifo, fd)")
        app = _BridgeApp(target, where.target.split("?", 1)[0], connect_options, on_data)
        base = config or ServerConfig()
        server = AppServer(app, listen_address(where),
                           config=replace(base, listen=listen_options, lifespan="off",
                                          shutdown_timeout=shutdown_timeout))
        return await server.start()
    parse_http_url(target_url)  # a malformed URL fails here, not per connection
    address = parse_address(listen_url)
    if is_datagram(address):
        raise UnsupportedError(f"{listen_url} is a datagram address; a WebSocket is bridged "
                               "to a stream (tcp, tls, unix, fifo, fd)")
    numbers = iter(range(1, 1 << 62))
    verify: Any = connect_options.ssl if connect_options.ssl is not None else True

    async def handler(stream: Stream) -> None:
        await _bridge_to_websocket(stream, target_url, _Counter(on_data, next(numbers)),
                                   verify)

    return await serve(handler, address, options=listen_options,
                       shutdown_timeout=shutdown_timeout)


__all__ = ["is_websocket_url", "listen_address", "start_websocket_relay"]
