"""How the WebSocket takes reads: on uvloop a plain transport hands over up to 256 KiB at once
(``WebSocketProtocol.data_received``); it is taken in slices of our own read size, and what
a peer that stops reading makes us answer stays bounded, with the rest held until it reads
again. Nothing held is lost or reordered."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.support.websocket_support import PING, PONG, TEXT, RawPeer, frame, serving
from trunkline.aio.websocket_protocol import WebSocketProtocol
from trunkline.protocol.websocket import WebSocketOptions

KiB = 1024


def test_the_class_follows_tls() -> None:
    plain = WebSocketProtocol.for_transport(tls=False)
    assert WebSocketProtocol.for_transport(tls=True) is WebSocketProtocol
    assert WebSocketProtocol.for_transport(tls=False) is plain  # made once
    assert issubclass(plain, WebSocketProtocol) and issubclass(plain, asyncio.Protocol)
    assert not issubclass(WebSocketProtocol, asyncio.Protocol)


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_pings_from_a_peer_that_stops_reading_are_all_answered_later(
        short_tmp: Path) -> None:
    options = WebSocketOptions(write_limit=16 * KiB, compression=False)
    state: dict[str, Any] = {}
    ready = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        state["ws"] = send.__self__.ws
        ready.set()
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message["text"]})

    pings = 4000  # about 520 KB of pings: far more than the pongs the server may buffer
    async with serving(app, f"unix://{short_tmp}/p.sock", options=options) as server, \
            RawPeer.open(server.urls[0], limit=64 * KiB) as peer:
        await asyncio.wait_for(ready.wait(), 5)
        ws = state["ws"]
        burst = b"".join(frame(PING, i.to_bytes(4, "big") * 31) for i in range(pings))

        async def flood() -> None:
            peer.stream.write(burst + frame(TEXT, b"after the pings"))
            await peer.stream.drain()  # done once the server took it all

        flooding = asyncio.ensure_future(flood())
        try:
            async with asyncio.timeout(10):  # the server stopped reading us: bounded
                while not ws.paused:
                    await asyncio.sleep(0.005)
            assert ws.transport.get_write_buffer_size() <= 4 * options.write_limit
            got = []
            while len(got) < pings:  # now read: every ping is answered, in order
                fin, opcode, payload = await peer.next_frame(10)
                assert opcode == PONG and fin
                got.append(payload)
            assert got == [i.to_bytes(4, "big") * 31 for i in range(pings)]
            fin, opcode, payload = await peer.next_frame(10)
            assert (opcode, payload) == (TEXT, b"after the pings")  # nothing lost
            await asyncio.wait_for(flooding, 10)
            assert not ws.paused  # reading again
        finally:
            flooding.cancel()
            await asyncio.gather(flooding, return_exceptions=True)


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_answers_to_a_read_of_many_messages_keep_their_order(short_tmp: Path) -> None:
    """The answers to one read of several messages go out batched: all of them, in order,
    and a close the app starts after them comes after them."""
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            text = message["text"]
            await send({"type": "websocket.send", "text": "echo " + text})
            if text == "last":
                await send({"type": "websocket.close", "code": 1000, "reason": "done"})

    async with serving(app, f"unix://{short_tmp}/p.sock") as server, \
            RawPeer.open(server.urls[0]) as peer:
        texts = [f"m{i}" for i in range(50)] + ["last"]
        peer.send(b"".join(frame(TEXT, t.encode()) for t in texts))  # one write, one read
        got = []
        for _ in texts:
            fin, opcode, payload = await peer.next_frame(5)
            assert opcode == TEXT and fin
            got.append(payload.decode())
        assert got == ["echo " + t for t in texts]
        assert await peer.expect_close() == (1000, b"done")


class _CountingTransport:
    """The real transport, with its writes counted."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_answers_to_a_read_of_many_messages_go_out_in_two_writes(short_tmp: Path) -> None:
    """A read of 10 messages, each answered at once: the answers go out in two writes of
    five (the peer starts on the first half while we answer the rest), not one each."""
    counting: list[_CountingTransport] = []
    accepted = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        ws = send.__self__.ws
        ws.transport = _CountingTransport(ws.transport)
        counting.append(ws.transport)
        accepted.set()
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message["text"]})

    async with serving(app, f"unix://{short_tmp}/w.sock",
                       options=WebSocketOptions(compression=False)) as server, \
            RawPeer.open(server.urls[0]) as peer:
        await asyncio.wait_for(accepted.wait(), 5)
        texts = [f"m{i}" for i in range(10)]
        peer.send(b"".join(frame(TEXT, t.encode()) for t in texts))  # one write, one read
        got = [(await peer.next_frame(5))[2].decode() for _ in texts]
        assert got == texts
        # one read gives two writes; should the read come in pieces, a few more
        assert 2 <= len(counting[0].writes) <= 4
