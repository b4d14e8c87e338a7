"""RFC 6455 on the wire: hand-built frames over real sockets against our server (and a
hand-driven server against our client). Each violation must get its close code, then the
connection must end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import trunkline
from tests.support.websocket_support import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    RawPeer,
    accept_key,
    close_payload,
    echo_app,
    frame,
    parse_frames,
    serving,
)
from trunkline import WebSocketClosed, WebSocketOptions

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

SMALL = WebSocketOptions(max_size=4096, max_fragments=8, compression=False)


@pytest.fixture(params=["tcp", "unix"])
def url(request: Any, short_tmp: Path) -> str:
    return "tcp://127.0.0.1:0" if request.param == "tcp" else f"unix://{short_tmp}/c.sock"


async def test_fragments_and_interleaved_pings(url: str) -> None:
    async with serving(echo_app, url, options=SMALL) as server, \
            RawPeer.open(server.urls[0]) as peer:
        peer.send(frame(TEXT, b"frag", fin=False) + frame(PING, b"in-between")
                  + frame(CONT, "é".encode()[:1], fin=False))
        assert await peer.next_frame() == (True, PONG, b"in-between")  # before the message ends
        peer.send(frame(PING, b"again") + frame(CONT, "é".encode()[1:] + b"!", fin=True))
        assert await peer.next_frame() == (True, PONG, b"again")
        assert await peer.next_frame() == (True, TEXT, "fragé!".encode())
        peer.send(frame(BINARY, b"\x00", fin=False) + frame(CONT, b"", fin=False)
                  + frame(CONT, b"\x01"))
        assert await peer.next_frame() == (True, BINARY, b"\x00\x01")
        peer.send(frame(PONG, b"unsolicited") + frame(TEXT, b"still fine"))
        assert await peer.next_frame() == (True, TEXT, b"still fine")
        peer.send(frame(CLOSE, close_payload(1000, b"thanks")))
        assert await peer.expect_close() == (1000, b"thanks")
        await peer.wait_eof()  # the server closes the TCP connection after the handshake


# ids by position: masked frames carry random keys, and pytest-xdist needs every worker to
# collect the same test ids
VIOLATIONS = [
    (frame(TEXT, b"\xed\xa0\x80"), 1007),  # a UTF-16 surrogate is not UTF-8
    (frame(TEXT, b"ok", fin=False) + frame(CONT, b"\xf8\x88\x80\x80\x80"), 1007),
    (frame(TEXT, b"hello", mask=False), 1002),
    (frame(TEXT, b"hello", rsv=2), 1002),
    (frame(0x5, b""), 1002),
    (frame(0xC, b""), 1002),
    (frame(PING, b"p" * 126), 1002),
    (frame(PING, b"", fin=False), 1002),
    (frame(CONT, b"orphan"), 1002),
    (frame(CLOSE, close_payload(1004)), 1002),
    (frame(CLOSE, close_payload(1000, b"\xc0\xaf")), 1007),
    (frame(BINARY, b"x" * 5000), 1009),
    (frame(TEXT, b"a" * 3000, fin=False) + frame(CONT, b"a" * 3000), 1009),
    (b"".join(frame(TEXT if i == 0 else CONT, b"f", fin=False) for i in range(9)), 1009),
]


@pytest.mark.parametrize(("wire", "code"), VIOLATIONS,
                         ids=[f"{n}-{code}" for n, (_, code) in enumerate(VIOLATIONS)])
async def test_violations_close_with_their_code(url: str, wire: bytes, code: int) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        seen.append(await receive())

    async with serving(app, url, options=SMALL) as server, \
            RawPeer.open(server.urls[0]) as peer:
        peer.send(wire)
        assert (await peer.expect_close())[0] == code
        await peer.wait_eof()  # the server does not wait for our close frame
    assert seen and seen[0]["type"] == "websocket.disconnect" and seen[0]["code"] == code


@pytest.mark.parametrize("code", [1000, 1001, 1003, 3000, 4999])
async def test_client_started_close_is_echoed(url: str, code: int) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            seen.append(await receive())
            if seen[-1]["type"] == "websocket.disconnect":
                return

    async with serving(app, url) as server, RawPeer.open(server.urls[0]) as peer:
        peer.send(frame(TEXT, b"last") + frame(CLOSE, close_payload(code, b"why")))
        assert await peer.expect_close() == (code, b"why")
        await peer.wait_eof()
    # The message before the close frame still reaches the app, then the disconnect.
    assert seen == [{"type": "websocket.receive", "text": "last"},
                    {"type": "websocket.disconnect", "code": code, "reason": "why"}]


async def test_empty_close_frame_is_echoed_empty(url: str) -> None:
    async with serving(echo_app, url) as server, RawPeer.open(server.urls[0]) as peer:
        peer.send(frame(CLOSE, b""))
        assert await peer.next_frame() == (True, CLOSE, b"")
        await peer.wait_eof()


async def test_server_started_close(url: str) -> None:
    async with serving(echo_app, url) as server, RawPeer.open(server.urls[0], "/close") as peer:
        assert await peer.expect_close() == (4001, b"bye now")
        peer.send(frame(CLOSE, close_payload(4001)))
        await peer.wait_eof()


async def test_data_after_the_close_frame_is_ignored(url: str) -> None:
    async with serving(echo_app, url) as server, RawPeer.open(server.urls[0]) as peer:
        peer.send(frame(CLOSE, close_payload(1000)) + frame(TEXT, b"ignored"))
        assert await peer.expect_close() == (1000, b"")
        with pytest.raises(EOFError):
            await peer.next_frame()


async def test_permessage_deflate_frames_from_a_raw_peer(url: str) -> None:
    import zlib

    async with serving(echo_app, url) as server, RawPeer.open(
            server.urls[0], extra="Sec-WebSocket-Extensions: permessage-deflate\r\n") as peer:
        compressor = zlib.compressobj(wbits=-15)
        data = compressor.compress(b"squeeze " * 100) + compressor.flush(zlib.Z_SYNC_FLUSH)
        peer.send(frame(TEXT, data[:-4], rsv=4))  # RSV1: compressed, tail removed (RFC 7692)
        fin, opcode, payload = await peer.next_frame()
        assert opcode == TEXT
        reply = zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff")
        assert reply == b"squeeze " * 100


# --------------------------------------------------------------------------- our client


async def _raw_server(script: Any) -> Any:
    """A hand-driven WebSocket server: answers the handshake, then runs ``script``."""

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


async def _frames_until_close(stream: trunkline.Stream) -> list[tuple[bool, int, bytes]]:
    """Frames from the client up to its close frame; then the server closes the TCP
    connection, as RFC 6455 asks of servers."""
    data = b""
    async with asyncio.timeout(5):
        while not any(op == CLOSE for _, op, _ in parse_frames(data)[0]):
            chunk = await stream.read()
            if not chunk:
                break
            data += chunk
    stream.close()
    return parse_frames(data)[0]


async def test_our_client_fails_a_masked_server_frame() -> None:
    got: list[Any] = []

    async def script(stream: trunkline.Stream) -> None:
        stream.write(frame(TEXT, b"masked!", mask=True))
        got.extend(await _frames_until_close(stream))

    server = await _raw_server(script)
    async with server:
        url = "ws://" + server.urls[0].removeprefix("tcp://") + "/"
        ws = await trunkline.websocket(url)
        with pytest.raises(WebSocketClosed) as closed:
            await ws.recv()
        assert closed.value.code == 1002
        await ws.wait_closed()
    assert [op for _, op, _ in got] == [CLOSE]
    assert got[0][2][:2] == close_payload(1002)


async def test_our_client_sends_masked_frames_and_echoes_a_server_close() -> None:
    got: list[Any] = []

    async def script(stream: trunkline.Stream) -> None:
        data = b""
        while not parse_frames(data)[0]:
            data += await stream.read()
        got.append(data)
        stream.write(frame(TEXT, b"fine", mask=False)
                     + frame(CLOSE, close_payload(1001, b"going"), mask=False))
        got.extend(await _frames_until_close(stream))

    server = await _raw_server(script)
    async with server:
        url = "ws://" + server.urls[0].removeprefix("tcp://") + "/"
        async with trunkline.websocket(url, compression=False) as ws:
            await ws.send("masked by us")
            assert [m async for m in ws] == ["fine"]  # 1001 is a normal close
        assert ws.close_code == 1001 and ws.close_reason == "going"
        assert ws.closed_by == "server"
    raw = got[0]
    assert raw[1] & 0x80  # the mask bit
    assert parse_frames(raw)[0] == [(True, TEXT, b"masked by us")]
    assert got[1:] == [(True, CLOSE, close_payload(1001, b"going"))]


async def test_a_close_in_the_middle_of_a_fragmented_message_is_a_normal_close(
        url: str) -> None:
    """Autobahn 7.1.5: fragment 1, close 1000, fragment 2: the unfinished message is dropped
    and the close is answered with 1000 (it was answered with 1002)."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        seen.append(await receive())

    async with serving(app, url) as server, RawPeer.open(server.urls[0]) as peer:
        peer.send(frame(TEXT, b"fragment1", fin=False) + frame(CLOSE, close_payload(1000))
                  + frame(CONT, b"fragment2", fin=True))
        assert await peer.expect_close() == (1000, b"")
        await peer.wait_eof()
    assert seen == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]


async def test_our_client_answers_a_close_in_the_middle_of_a_fragmented_message() -> None:
    got: list[Any] = []

    async def script(stream: trunkline.Stream) -> None:
        stream.write(frame(TEXT, b"fragment1", fin=False, mask=False)
                     + frame(CLOSE, close_payload(1000), mask=False)
                     + frame(CONT, b"fragment2", mask=False))
        got.extend(await _frames_until_close(stream))

    server = await _raw_server(script)
    async with server:
        url = "ws://" + server.urls[0].removeprefix("tcp://") + "/"
        async with trunkline.websocket(url, compression=False) as ws:
            assert [m async for m in ws] == []  # a normal close, no message
        assert ws.close_code == 1000 and ws.closed_by == "server"
    assert got == [(True, CLOSE, close_payload(1000))]
