"""The built-in WebSocket apps: ``chat`` (a broadcast room) and the WebSocket side of
``echo``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import trunkline
from tests.support.websocket_support import serving, ws_url
from trunkline import WebSocketClosed
from trunkline.apps.chat import MAX_BACKLOG, chat_app
from trunkline.apps.websocket_echo import websocket_echo

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])


async def test_chat_broadcasts_to_every_member(short_tmp: Path) -> None:
    room = chat_app()
    async with serving(room, f"unix://{short_tmp}/c.sock", "tcp://127.0.0.1:0") as server:
        async with trunkline.websocket(ws_url(server, "/", 0)) as ada, \
                trunkline.websocket(ws_url(server, "/any/path", 1)) as bob:
            while len(room.members) < 2:  # both accepted (the app adds them after accept)
                await ada.ping()
            await ada.send("hello from ada")
            assert await ada.recv() == "hello from ada"  # the sender hears itself too
            assert await bob.recv() == "hello from ada"
            await bob.send(b"\x00bytes")
            assert await ada.recv() == b"\x00bytes" and await bob.recv() == b"\x00bytes"
        async with trunkline.Client() as client:
            page = await client.get("http://" + server.urls[1].removeprefix("tcp://") + "/")
        assert page.status_code == 200 and b"new WebSocket" in page.content
    assert room.members == set()


async def test_chat_drops_a_member_that_does_not_keep_up(short_tmp: Path) -> None:
    room = chat_app()
    async with serving(room, f"unix://{short_tmp}/c.sock") as server:
        slow = await trunkline.websocket(ws_url(server), max_queue=1024, compression=False)
        async with trunkline.websocket(ws_url(server), compression=False) as fast:
            while len(room.members) < 2:
                await fast.ping()
            line = "x" * 4096
            for _ in range(MAX_BACKLOG * 3):  # far more than the slow member's sockets hold
                await fast.send(line)
                assert await fast.recv() == line  # the fast member is never held up
            assert len(room.members) == 1  # the slow one was dropped
        received = 0
        with pytest.raises(WebSocketClosed) as closed:
            while True:
                await slow.recv()
                received += 1
        assert closed.value.code == 1008 and closed.value.reason == "too slow"
        assert received < MAX_BACKLOG * 3


async def test_websocket_echo_takes_the_first_subprotocol() -> None:
    async with serving(websocket_echo) as server:
        async with trunkline.websocket(ws_url(server), subprotocols=["v2", "v1"]) as ws:
            assert ws.subprotocol == "v2"
            for message in ("text", b"bytes", ""):
                await ws.send(message)
                assert await ws.recv() == message
        async with trunkline.websocket(ws_url(server)) as ws:
            assert ws.subprotocol is None
            await ws.send("plain")
            assert await asyncio.wait_for(ws.recv(), 5) == "plain"
