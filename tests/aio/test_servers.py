"""``trunkline.connect`` and ``trunkline.serve``: awaited or entered with ``async with``; and
``aclose()`` on every server object, each stopping for real (its socket file goes, a new
connection is refused)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import trunkline
from trunkline.aio.datagram_server import serve_datagram
from trunkline.apps.echo_service import EchoServer
from trunkline.errors import TransportError

pytestmark = pytest.mark.asyncio


async def echo(stream: trunkline.Stream) -> None:
    async for chunk in stream:
        await stream.send(chunk)


@pytest.mark.parametrize("kind", ["tcp", "unix"])
async def test_connect_and_serve_as_context_managers(kind: str, short_tmp: Path) -> None:
    where = "tcp://127.0.0.1:0" if kind == "tcp" else f"unix://{short_tmp}/s.sock"
    async with asyncio.timeout(20):
        async with trunkline.serve(echo, where) as server:
            assert isinstance(server, trunkline.Server)
            url = server.urls[0]
            async with trunkline.connect(url) as stream:
                assert isinstance(stream, trunkline.Stream)
                await stream.send(b"entered")
                assert await stream.readexactly(7) == b"entered"
            assert stream.transport.is_closing()  # closed on the way out
            # the older spellings still work
            awaited = await trunkline.connect(url)
            await awaited.send(b"awaited")
            assert await awaited.readexactly(7) == b"awaited"
            await awaited.aclose()
            async with await trunkline.connect(url) as both:
                await both.send(b"both")
                assert await both.readexactly(4) == b"both"
        # the server stopped on the way out: nobody answers there any more
        with pytest.raises(TransportError, match="refused|no such file"):
            await trunkline.connect(url, timeout=5)
        if kind == "unix":
            assert not (short_tmp / "s.sock").exists()
        server = await trunkline.serve(echo, where)  # awaited: started, stopped by aclose
        await server.aclose()


async def test_a_failed_open_raises_on_entering(short_tmp: Path) -> None:
    with pytest.raises(TransportError, match="no such file"):
        async with trunkline.connect(f"unix://{short_tmp}/none.sock", timeout=5):
            raise AssertionError("not entered")


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    pass  # never called: nothing connects


def _makers(tmp: Path) -> dict[str, Callable[[str], Awaitable[Any]]]:
    """Each server object the library makes, started on a Unix path."""
    async def app_server(path: str) -> Any:
        return await trunkline.AppServer(_app, f"unix://{path}",
                                         config=trunkline.ServerConfig(lifespan="off")).start()

    async def echo_server(path: str) -> Any:
        return await EchoServer(f"unix://{path}").start()

    async def serve_server(path: str) -> Any:
        return await trunkline.serve(echo, f"unix://{path}")

    async def relay(path: str) -> Any:
        return await trunkline.relay.start_relay(f"unix://{path}", "tcp://127.0.0.1:9")

    async def datagram_relay(path: str) -> Any:
        return await trunkline.relay.start_datagram_relay(f"unixgram://{path}",
                                                          "udp://127.0.0.1:9")

    async def websocket_relay(path: str) -> Any:
        return await trunkline.relay.start_websocket_relay(
            f"ws+unix://{str(path).replace('/', '%2F')}/", "tcp://127.0.0.1:9")

    async def datagram_listener(path: str) -> Any:
        async def handler(data: bytes, source: Any) -> bytes:
            return data

        return await serve_datagram(trunkline.parse_address(f"unixgram://{path}"), handler)

    return {"AppServer": app_server, "EchoServer": echo_server, "serve": serve_server,
            "Relay": relay, "DatagramRelay": datagram_relay,
            "websocket relay": websocket_relay, "serve_datagram": datagram_listener}


@pytest.mark.parametrize("name", list(_makers(Path("/"))))
async def test_every_server_object_stops_with_aclose(name: str, short_tmp: Path) -> None:
    path = short_tmp / f"{os.getpid()}.sock"
    async with asyncio.timeout(20):
        server = await _makers(short_tmp)[name](str(path))
        assert path.exists()
        await server.aclose()
    assert not path.exists(), f"{name}.aclose() left its socket file"
