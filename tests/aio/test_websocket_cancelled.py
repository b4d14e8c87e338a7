"""A WebSocket receive handed its message as the waiter's result, then cancelled before its
task ran, loses nothing: the message goes back in front of the queue.

The receiver usually runs inside the read callback itself (``_loop.resume``), so nothing can
cancel it in between. When the callback comes from inside a running task, the receiver's
wake-up is scheduled instead, and a cancel (a timeout firing in the same loop pass) can come
first. These tests make exactly that happen: the test task itself delivers the frames, then
cancels the receiver. The client's ``recv`` and the ASGI ``receive``; both event loops."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import trunkline
from tests.support.websocket_support import BINARY, TEXT, frame, serving, ws_url
from trunkline.protocol.websocket import WebSocketOptions

pytestmark = [pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"]), pytest.mark.timeout(30)]


async def started(task: asyncio.Task[Any], waiting: Any) -> None:
    """Let ``task`` take its first step (one loop pass: created tasks run in order)."""
    await asyncio.sleep(0)
    assert waiting(), "the receiver is not waiting yet"
    assert not task.done()


async def silent(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while (await receive())["type"] == "websocket.receive":
        pass


async def test_a_cancelled_client_recv_gives_its_message_back(short_tmp: Path) -> None:
    async with asyncio.timeout(20), serving(silent, f"unix://{short_tmp}/s.sock") as server:
        ws = await trunkline.websocket(ws_url(server), compression=False)
        try:
            protocol = ws._protocol
            receiver = asyncio.create_task(ws.recv())
            await started(receiver, lambda: protocol._recv_waiter is not None)
            # From inside this (running) task: the receiver cannot run now, its wake-up is
            # scheduled with b"one" as its result; the cancel comes first.
            protocol.data_received(frame(BINARY, b"one", mask=False))
            receiver.cancel()
            with pytest.raises(asyncio.CancelledError):
                await receiver
            protocol.data_received(frame(TEXT, b"two", mask=False))  # came since: after it
            assert await ws.recv() == b"one"
            assert await ws.recv() == "two"
            assert protocol.queued == 0
        finally:
            await ws.close()


async def test_a_cancelled_asgi_receive_gives_its_message_back(short_tmp: Path) -> None:
    state: dict[str, Any] = {}
    ready = asyncio.Event()
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        state["ws"], state["receive"] = send.__self__.ws, receive
        ready.set()
        await asyncio.Event().wait()  # the test drives receive itself

    options = WebSocketOptions(compression=False)
    async with asyncio.timeout(20), \
            serving(app, f"unix://{short_tmp}/a.sock", options=options) as server:
        ws = await trunkline.websocket(ws_url(server), compression=False)
        try:
            await ready.wait()
            protocol, receive = state["ws"], state["receive"]
            receiver = asyncio.create_task(receive())
            await started(receiver, lambda: protocol._recv_waiter is not None)
            protocol.data_received(frame(TEXT, b"one"))
            receiver.cancel()
            with pytest.raises(asyncio.CancelledError):
                await receiver
            protocol.data_received(frame(BINARY, b"two"))
            await got.put(await receive())
            await got.put(await receive())
            assert got.get_nowait() == {"type": "websocket.receive", "text": "one"}
            assert got.get_nowait() == {"type": "websocket.receive", "bytes": b"two"}
            assert protocol.queued == 0
        finally:
            ws.abort()
