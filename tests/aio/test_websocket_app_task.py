"""What a task gives an ASGI WebSocket app holds across messages, whatever runs it: awaits
between receives, returning or raising right after a receive, ``asyncio.timeout``,
cancellation while waiting in receive and during a message, receive from a child task,
contextvars and ``current_task()`` across messages; real sockets, both loops."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import pytest

import trunkline
from tests.support.websocket_support import serving, ws_url
from trunkline import WebSocketClosed
from trunkline.protocol.websocket import WebSocketOptions

pytestmark = [pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"]), pytest.mark.timeout(30)]

OPTIONS = WebSocketOptions(compression=False, ping_interval=None)
COUNTER: contextvars.ContextVar[int] = contextvars.ContextVar("counter")


@contextlib.asynccontextmanager
async def connected(app: Any) -> AsyncIterator[Any]:
    async with asyncio.timeout(20), serving(app, options=OPTIONS) as server:
        ws = await trunkline.websocket(ws_url(server), compression=False)
        try:
            yield ws
        finally:
            ws.abort()


async def accept(receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})


def text(value: str) -> dict[str, Any]:
    return {"type": "websocket.send", "text": value}


async def test_awaits_between_receives_are_handed_to_the_task() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await accept(receive, send)
        loop = asyncio.get_running_loop()
        while (message := await receive())["type"] == "websocket.receive":
            await asyncio.sleep(0)  # a bare yield
            event = asyncio.Event()
            loop.call_soon(event.set)
            await event.wait()  # a future
            answer = loop.create_future()
            loop.call_soon(answer.set_result, message["text"].upper())
            await send(text(await answer))

    async with connected(app) as ws:
        for i in range(20):
            await ws.send(f"m{i}")
            assert await ws.recv() == f"M{i}"
        for i in range(50):  # in flight together: nothing lost, nothing reordered
            await ws.send(f"p{i}")
        assert [await ws.recv() for _ in range(50)] == [f"P{i}" for i in range(50)]


@pytest.mark.parametrize(("word", "code"), [("return", 1000), ("raise", 1011)])
async def test_an_app_that_ends_right_after_a_receive(word: str, code: int) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await accept(receive, send)
        while True:
            message = await receive()
            if message.get("text") == "return":
                return
            if message.get("text") == "raise":
                raise ValueError("the app failed")
            await send(text(message["text"]))

    async with connected(app) as ws:
        await ws.send("one")
        assert await ws.recv() == "one"
        await ws.send(word)
        with pytest.raises(WebSocketClosed) as closed:
            await ws.recv()
        assert closed.value.code == code


async def test_a_timeout_around_receive() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await accept(receive, send)
        task = asyncio.current_task()
        assert task is not None
        try:
            async with asyncio.timeout(0.05):  # fires: nothing comes
                await receive()
        except TimeoutError:
            await send(text(f"timeout {task.cancelling()}"))
        while True:
            async with asyncio.timeout(10):  # never fires: entered and left in each step
                message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send(text(f"{message['text']} {task.cancelling()}"))

    async with connected(app) as ws:
        assert await ws.recv() == "timeout 0"
        for i in range(10):
            await ws.send(f"m{i}")
            assert await ws.recv() == f"m{i} 0"


async def test_cancel_while_waiting_in_receive() -> None:
    state: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await accept(receive, send)
        state["task"] = asyncio.current_task()
        while True:
            try:
                message = await receive()
            except asyncio.CancelledError:
                state["task"].uncancel()
                await send(text("cancelled"))
                continue
            if message["type"] != "websocket.receive":
                return
            await send(text(message["text"]))

    async with connected(app) as ws:
        await ws.send("a")
        assert await ws.recv() == "a"  # the app is waiting in receive again
        state["task"].cancel()
        assert await ws.recv() == "cancelled"
        await ws.send("b")
        assert await ws.recv() == "b"
        state["task"].cancel()
        await ws.send("c")  # may come before the app saw its cancel: not lost
        assert await ws.recv() == "cancelled"
        assert await ws.recv() == "c"


async def test_cancel_during_a_message_lands_at_the_next_await() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await accept(receive, send)
        task = asyncio.current_task()
        assert task is not None
        while True:
            try:
                message = await receive()
                if message["type"] != "websocket.receive":
                    return
                if message["text"] == "cancel at receive":
                    task.cancel()
                    await send(text("ack"))  # (no wait: the cancel is still ahead)
                    continue
                if message["text"] == "cancel at sleep":
                    task.cancel()
                    await asyncio.sleep(5)
                    await send(text("not cancelled"))
                    continue
                await send(text(message["text"]))
            except asyncio.CancelledError:
                task.uncancel()
                await send(text("cancelled"))

    async with connected(app) as ws:
        await ws.send("cancel at receive")
        assert await ws.recv() == "ack"
        assert await ws.recv() == "cancelled"
        await ws.send("after")
        assert await ws.recv() == "after"
        await ws.send("cancel at sleep")
        assert await ws.recv() == "cancelled"
        await ws.send("again")
        assert await ws.recv() == "again"


@pytest.mark.parametrize(("word", "code"), [("return", 1000), ("raise", 1011)])
async def test_cancel_then_end_during_a_message(word: str, code: int) -> None:
    """The task ends cancelled, after the app's end was answered as it would be."""
    state: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await accept(receive, send)
        state["task"] = task = asyncio.current_task()
        assert task is not None
        message = await receive()
        task.cancel()
        if message["text"] == "raise":
            raise ValueError("the app failed")

    async with connected(app) as ws:
        await ws.send(word)
        with pytest.raises(WebSocketClosed) as closed:
            await ws.recv()
        assert closed.value.code == code
        await asyncio.wait([state["task"]])
        assert state["task"].cancelled()


async def test_receive_from_a_child_task() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await accept(receive, send)
        message = await receive()
        await send(text(f"parent {message['text']}"))

        async def child() -> None:
            for _ in range(3):
                message = await receive()
                await send(text(f"child {message['text']}"))

        async with asyncio.TaskGroup() as group:
            group.create_task(child())
        message = await receive()
        await send(text(f"parent {message['text']}"))

    async with connected(app) as ws:
        for word in ("a", "b", "c", "d", "e"):
            await ws.send(word)
        assert [await ws.recv() for _ in range(5)] == [
            "parent a", "child b", "child c", "child d", "parent e"]
        with pytest.raises(WebSocketClosed) as closed:
            await ws.recv()
        assert closed.value.code == 1000


async def test_context_and_current_task_across_messages() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await accept(receive, send)
        task = asyncio.current_task()
        COUNTER.set(0)
        while (message := await receive())["type"] == "websocket.receive":
            COUNTER.set(COUNTER.get() + 1)
            same = asyncio.current_task() is task
            await send(text(f"{message['text']} {COUNTER.get()} {same}"))

    async with connected(app) as ws:
        for i in range(1, 11):
            await ws.send("m")
            assert await ws.recv() == f"m {i} True"
