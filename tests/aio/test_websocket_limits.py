"""Bad and dead peers: bounded memory both ways, ping floods, keepalive timeouts, close
timeouts. Small intervals serve as deadlines; nothing waits on a sleep for readiness."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import trunkline
from tests.support.websocket_support import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    RawPeer,
    accept_key,
    close_code_of,
    echo_app,
    frame,
    parse_frames,
    serving,
    ws_url,
)
from trunkline import WebSocketClosed, WebSocketOptions
from trunkline.aio.websocket_protocol import WebSocketProtocol

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

KiB = 1024


@pytest.fixture(params=["unix", "fifo"])
def url(request: Any, short_tmp: Path) -> str:
    return f"unix://{short_tmp}/l.sock" if request.param == "unix" else \
        f"fifo://{short_tmp}/l.fifo"


def signal_on(ws: WebSocketProtocol, method: str) -> asyncio.Event:
    """An event set when the protocol callback ``method`` (e.g. pause_writing) runs."""
    event = asyncio.Event()
    original = getattr(ws, method)

    def wrapped(*args: Any) -> Any:
        event.set()
        return original(*args)

    setattr(ws, method, wrapped)
    return event


async def test_send_waits_for_a_peer_that_does_not_read(url: str) -> None:
    options = WebSocketOptions(write_limit=64 * KiB, compression=False)
    message = b"m" * (64 * KiB)
    state: dict[str, Any] = {"started": 0, "done": 0, "go": asyncio.Event()}
    ready = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        state["ws"] = send.__self__.ws
        ready.set()
        await state["go"].wait()
        while True:
            state["started"] += 1
            await send({"type": "websocket.send", "bytes": message})
            state["done"] += 1

    async with serving(app, url, options=options) as server, \
            RawPeer.open(server.urls[0]) as peer:
        await asyncio.wait_for(ready.wait(), 5)
        ws: WebSocketProtocol = state["ws"]
        paused = signal_on(ws, "pause_writing")
        state["go"].set()
        await asyncio.wait_for(paused.wait(), 10)
        for _ in range(20):
            await asyncio.sleep(0)  # give the app every chance to run ahead
        assert state["started"] == state["done"] + 1  # it waits inside send()
        buffered = ws.transport.get_write_buffer_size()
        assert buffered <= options.write_limit + len(message) + 64
        # The peer reads again: the app goes on.
        before = state["done"]
        for _ in range(40):
            fin, opcode, payload = await peer.next_frame()
            assert opcode == BINARY and payload == message
        assert state["done"] > before


async def test_an_app_that_does_not_receive_stops_the_reading(url: str) -> None:
    options = WebSocketOptions(max_queue=128 * KiB, compression=False)
    message = b"q" * (16 * KiB)
    state: dict[str, Any] = {}
    release = asyncio.Event()
    received: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        state["ws"] = send.__self__.ws
        await release.wait()
        while (event := await receive())["type"] == "websocket.receive":
            received.append(event["bytes"])

    async with serving(app, url, options=options) as server:
        client = await trunkline.websocket(ws_url(server), compression=False,
                                           write_limit=32 * KiB)
        await client.ping()  # the app has accepted and stored its WebSocket
        client_protocol = client._protocol  # noqa: SLF001
        blocked = signal_on(client_protocol, "pause_writing")
        sent = 0

        async def flood() -> None:
            nonlocal sent
            while True:
                await client.send(message)
                sent += 1

        server_ws: WebSocketProtocol = state["ws"]
        stopped = signal_on(server_ws, "pause_for")
        flooding = asyncio.ensure_future(flood())
        try:
            await asyncio.wait_for(stopped.wait(), 10)  # the server stopped reading...
            while not (client_protocol.write_paused and
                       client_protocol._drain_waiters):  # noqa: SLF001
                blocked.clear()
                await asyncio.wait_for(blocked.wait(), 10)  # ...so the client's sends wait
            assert server_ws.paused
            # Held bytes stay bounded: max_queue plus what one read can bring.
            assert server_ws.queued <= options.max_queue + 64 * KiB + len(message)
        finally:
            flooding.cancel()
            await asyncio.gather(flooding, return_exceptions=True)
        release.set()
        await client.close()
    assert len(received) >= sent and all(m == message for m in received)


async def test_a_ping_flood_from_a_peer_that_does_not_read(short_tmp: Path) -> None:
    options = WebSocketOptions(write_limit=16 * KiB, compression=False)
    state: dict[str, Any] = {}
    ready = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        state["ws"] = send.__self__.ws
        ready.set()
        await receive()

    async with serving(app, f"unix://{short_tmp}/p.sock", options=options) as server, \
            RawPeer.open(server.urls[0], limit=64 * KiB) as peer:
        await asyncio.wait_for(ready.wait(), 5)
        ws: WebSocketProtocol = state["ws"]
        ping = frame(PING, b"p" * 125) * 64

        async def flood() -> None:
            while True:
                peer.stream.write(ping)
                await peer.stream.drain()  # blocks once the server stops reading us

        flooding = asyncio.ensure_future(flood())
        try:
            # Settled: neither side reads any more (the peer's stream is full of pongs).
            async with asyncio.timeout(10):
                while not (ws.paused and peer.stream.protocol._reading_paused):  # noqa: SLF001
                    await asyncio.sleep(0.005)
            for _ in range(20):
                await asyncio.sleep(0)
            assert ws.paused and not flooding.done()  # the flooder waits
            assert ws.transport.get_write_buffer_size() <= 4 * options.write_limit
        finally:
            flooding.cancel()
            await asyncio.gather(flooding, return_exceptions=True)


async def test_keepalive_timeout_closes_a_dead_client(url: str) -> None:
    options = WebSocketOptions(ping_interval=0.2, ping_timeout=0.2, compression=False)
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        seen.append(await receive())

    async with serving(app, url, options=options) as server, \
            RawPeer.open(server.urls[0]) as peer:
        fin, opcode, payload = await peer.next_frame()
        assert opcode == PING and len(payload) == 4  # we never answer it
        code, reason = await peer.expect_close(timeout=5)
        assert code == 1011 and b"keepalive" in reason
        await peer.wait_eof()
    assert seen[0]["type"] == "websocket.disconnect" and seen[0]["code"] == 1011


async def test_keepalive_keeps_a_live_client(short_tmp: Path) -> None:
    options = WebSocketOptions(ping_interval=0.05, ping_timeout=0.5, compression=False)
    async with serving(echo_app, f"unix://{short_tmp}/k.sock", options=options) as server, \
            RawPeer.open(server.urls[0]) as peer:
        for _ in range(3):
            fin, opcode, payload = await peer.next_frame()
            assert opcode == PING
            peer.send(frame(PONG, payload))
        peer.send(frame(TEXT, b"still here"))
        while (got := await peer.next_frame())[1] == PING:
            peer.send(frame(PONG, got[2]))
        assert got == (True, TEXT, b"still here")


async def _raw_ws_server(script: Any) -> Any:
    async def handler(stream: trunkline.Stream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await stream.read()
            if not chunk:
                return
            head += chunk
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        stream.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                     + accept_key(key.decode()).encode() + b"\r\n\r\n")
        await script(stream)

    return await trunkline.serve(handler, "tcp://127.0.0.1:0")


async def test_client_keepalive_timeout() -> None:
    received = bytearray()

    async def deaf(stream: trunkline.Stream) -> None:
        while chunk := await stream.read():  # reads, never answers a ping
            received.extend(chunk)

    async with await _raw_ws_server(deaf) as server:
        url = "ws://" + server.urls[0].removeprefix("tcp://") + "/"
        ws = await trunkline.websocket(url, ping_interval=0.2, ping_timeout=0.2,
                                       close_timeout=0.3, compression=False)
        with pytest.raises(WebSocketClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.code == 1011
        await asyncio.wait_for(ws.wait_closed(), 5)  # the close timer cut the connection
    frames, _ = parse_frames(bytes(received))  # what the server saw: pings, then our close
    assert frames[0][1] == PING and frames[-1][1] == CLOSE
    assert close_code_of(frames[-1][2]) == 1011


async def test_close_timeout_when_the_peer_never_answers() -> None:
    async def mute(stream: trunkline.Stream) -> None:
        while await stream.read():
            pass

    async with await _raw_ws_server(mute) as server:
        url = "ws://" + server.urls[0].removeprefix("tcp://") + "/"
        ws = await trunkline.websocket(url, close_timeout=0.3)
        await asyncio.wait_for(ws.close(1000, "bye"), 5)
        assert ws.close_code == 1006 and not ws.open  # no close frame came back


async def test_close_frame_from_a_raw_server_then_silence() -> None:
    async def closer(stream: trunkline.Stream) -> None:
        stream.write(frame(CLOSE, close_code_payload(4000), mask=False))
        while await stream.read():  # never closes the TCP connection itself
            pass

    async with await _raw_ws_server(closer) as server:
        url = "ws://" + server.urls[0].removeprefix("tcp://") + "/"
        ws = await trunkline.websocket(url, close_timeout=0.3)
        with pytest.raises(WebSocketClosed) as closed:
            await ws.recv()
        assert closed.value.code == 4000
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 4000 and close_code_of(close_code_payload(4000)) == 4000


def close_code_payload(code: int) -> bytes:
    return code.to_bytes(2, "big")


async def test_full_duplex_peers_that_both_send_more_than_the_buffers_hold(url: str) -> None:
    """A client with a sender and a reader task against the echo server, both directions
    far over every buffer: it finishes. (Reading must go on while only sends wait: with
    both ends reading nothing while their writing was paused, they waited on each other.)"""
    message = b"m" * (256 * KiB)
    count = 64  # 16 MiB each way
    async with serving(echo_app, url, options=WebSocketOptions(compression=False)) as server, \
            trunkline.websocket(ws_url(server), compression=False) as ws:

        async def sender() -> None:
            for _ in range(count):
                await ws.send(message)

        async def reader() -> int:
            got = 0
            for _ in range(count):
                assert await ws.recv() == message
                got += 1
            return got

        _, got = await asyncio.wait_for(asyncio.gather(sender(), reader()), 30)
    assert got == count
