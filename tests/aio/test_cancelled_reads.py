"""A read handed its bytes (or a recv its datagram) as the waiter's result, then cancelled
before its task ran, loses nothing: the bytes go back in front of the buffer.

The reader usually runs inside the read callback itself (``_loop.resume``), so nothing can
cancel it in between. When the callback comes from inside a running task (a feeder), the
reader's wake-up is scheduled instead, and a cancel (a timeout firing in the same loop pass)
can come first: the task then ends with CancelledError, not with the bytes. These tests
make exactly that happen: the test task itself delivers the bytes, then cancels the reader.
Real connections over a Unix socket and UDP; both event loops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import trunkline
from trunkline.address import Identity

pytestmark = [pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"]), pytest.mark.timeout(30)]


async def hold(stream: trunkline.Stream) -> None:
    await stream.read()  # the server side says nothing: only our delivery reaches the client


async def started(task: asyncio.Task[object], waiting: Callable[[], bool]) -> None:
    """Let ``task`` take its first step (one loop pass: created tasks run in order)."""
    await asyncio.sleep(0)
    assert waiting(), "the reader is not waiting yet"
    assert not task.done()


@pytest.mark.parametrize("call", ["read", "readexactly"])
async def test_a_cancelled_stream_read_gives_its_bytes_back(call: str, short_tmp: Path) -> None:
    async with (asyncio.timeout(20),
                trunkline.serve(hold, f"unix://{short_tmp}/s.sock") as server,
                trunkline.connect(server.urls[0]) as stream):
        read: Callable[[], Awaitable[bytes]] = (
            stream.read if call == "read" else lambda: stream.readexactly(3))
        reader = asyncio.create_task(read())
        await started(reader, lambda: stream.protocol._read_waiter is not None)
        # From inside this (running) task: the reader cannot run now, its wake-up is
        # scheduled with b"abc" as its result; the cancel comes first.
        stream.protocol.data_received(b"abc")
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        stream.protocol.data_received(b"def")  # more came since: after them
        assert await stream.readexactly(6) == b"abcdef"


async def echo(data: bytes, source: Identity) -> bytes:
    return data


async def test_a_cancelled_datagram_recv_gives_its_datagram_back() -> None:
    async with (asyncio.timeout(20),
                trunkline.serve(None, "udp://127.0.0.1:0", datagram_handler=echo) as server,
                await trunkline.open_datagram(server.urls[0]) as endpoint):
        protocol = endpoint._protocol
        receiver = asyncio.create_task(endpoint.recv())
        await started(receiver, lambda: bool(protocol.waiters))
        peer = endpoint.peer
        protocol.datagram_received(b"one", peer)
        receiver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await receiver
        protocol.datagram_received(b"two", peer)
        assert (await endpoint.recv())[0] == b"one"
        assert (await endpoint.recv())[0] == b"two"
        # and the endpoint still talks to the server for real
        await endpoint.send(b"three")
        assert (await endpoint.recv())[0] == b"three"
