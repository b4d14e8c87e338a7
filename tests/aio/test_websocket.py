"""WebSocket client and server over every stream transport, against each other and against
the ``websockets`` library; Starlette and FastAPI routes; TLS; denials; tracing."""

from __future__ import annotations

import ast
import asyncio
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from fastapi import FastAPI
from fastapi import WebSocket as FastAPIWebSocket
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.client import unix_connect as ws_unix_connect
from websockets.asyncio.server import serve as ws_serve
from websockets.asyncio.server import unix_serve as ws_unix_serve
from websockets.exceptions import ConnectionClosedError, InvalidStatus

import trunkline
from tests.support.websocket_support import echo_app, serving, ws_url
from trunkline import WebSocketClosed, WebSocketHandshakeError
from trunkline.client import ConnectTimeoutError
from trunkline.errors import AddressError, AsgiWebSocketClosed, ConnectError, TransportError
from trunkline.trace import Step, Tracer

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])


def abstract_name(tmp: Path) -> str:
    return f"tl-ws-{os.getpid()}-{tmp.name}"


# --------------------------------------------------------------------------- interop


async def test_websockets_client_against_our_server_tcp_and_unix(short_tmp: Path) -> None:
    sock = short_tmp / "s.sock"
    async with serving(echo_app, "tcp://127.0.0.1:0", f"unix://{sock}") as server:
        port = server.addresses[0].port  # type: ignore[union-attr]
        async with ws_connect(f"ws://127.0.0.1:{port}/chat", subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
            assert ws.response is not None and ws.response.headers["x-accepted"] == "yes"
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\xffbinary")
            assert await ws.recv() == b"\x00\xffbinary"
            big = "x" * 500_000
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send(["frag", "mented"])  # websockets sends an iterable as fragments
            assert await ws.recv() == "fragmented"
            latency = await (await ws.ping())
            assert latency >= 0
        assert ws.close_code == 1000
        async with ws_unix_connect(str(sock), "ws://localhost/u") as ws:
            await ws.send("over uds")
            assert await ws.recv() == "over uds"
        async with ws_connect(f"ws://127.0.0.1:{port}/close") as ws:
            with pytest.raises(ConnectionClosedError):
                await ws.recv()
        assert ws.close_code == 4001 and ws.close_reason == "bye now"
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(f"ws://127.0.0.1:{port}/deny"):
                pass
        assert refused.value.response.status_code == 403


async def _websockets_echo(ws: Any) -> None:
    if ws.request.path == "/server-closes":
        await ws.close(4002, "server done")
        return
    if ws.request.path == "/big":
        await ws.send(b"x" * (2 * 1024 * 1024))
    async for message in ws:
        await ws.send(message)


async def test_our_client_against_websockets_server_tcp_and_unix(short_tmp: Path) -> None:
    sock = short_tmp / "w.sock"
    async with ws_serve(_websockets_echo, "127.0.0.1", 0, subprotocols=["v1", "chat"]) as srv, \
            ws_unix_serve(_websockets_echo, str(sock)):
        port = srv.sockets[0].getsockname()[1]
        async with trunkline.websocket(f"ws://127.0.0.1:{port}/e", subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat" and ws.extensions == ["permessage-deflate"]
            await ws.send("text")
            assert await ws.recv() == "text"
            await ws.send(b"\x01\x02")
            assert await ws.recv() == b"\x01\x02"
            rtt = await ws.ping()
            assert isinstance(rtt, float) and rtt >= 0
        assert ws.close_code == 1000 and ws.closed_by == "client"
        async with trunkline.websocket(f"ws+unix://{str(sock).replace('/', '%2F')}/x",
                                       subprotocols=["v1"]) as ws:
            await ws.send("unix")
            assert await ws.recv() == "unix"
            await ws.close(4000, "enough")
        assert ws.close_code == 4000 and ws.close_reason == "enough"
        async with trunkline.websocket(f"ws://127.0.0.1:{port}/server-closes",
                                       subprotocols=["v1"]) as ws:
            got = [m async for m in _quiet(ws)]
        assert got == [] and ws.close_code == 4002 and ws.close_reason == "server done"
        assert ws.closed_by == "server"
        async with trunkline.websocket(f"ws://127.0.0.1:{port}/big", subprotocols=["v1"],
                                       max_size=1024 * 1024) as ws:
            with pytest.raises(WebSocketClosed) as closed:
                await ws.recv()
        assert closed.value.code == 1009 and not closed.value.ok


async def _quiet(ws: Any) -> Any:
    try:
        async for message in ws:
            yield message
    except WebSocketClosed:
        return


# --------------------------------------------------------------------------- our transports


@pytest.mark.parametrize("kind", ["tcp", "unix", "abstract", "fifo"])
async def test_our_client_and_server_on_every_kind(kind: str, short_tmp: Path) -> None:
    url = {"tcp": "tcp://127.0.0.1:0", "unix": f"unix://{short_tmp}/s.sock",
           "abstract": f"unix:@{abstract_name(short_tmp)}",
           "fifo": f"fifo://{short_tmp}/f.fifo"}[kind]
    async with serving(echo_app, url) as server:
        target = ws_url(server, "/scope?a=1")
        async with trunkline.websocket(target, subprotocols=["chat"],
                                       headers={"X-Who": "test"}) as ws:
            scope = ast.literal_eval(await ws.recv())
            assert scope["scheme"] == "ws" and scope["path"] == "/scope"
            assert scope["query_string"] == b"a=1" and scope["subprotocols"] == ["chat"]
            assert scope["headers"]["x-who"] == "test"
            assert ws.subprotocol == "chat"
            assert (b"x-accepted", b"yes") in ws.response_headers
            for message in ("one", b"two", "", b"", "ü" * 70_000, os.urandom(200_000)):
                await ws.send(message)
                assert await ws.recv() == message
            assert await ws.ping() >= 0
        assert ws.close_code == 1000 and ws.closed_by == "client"


async def test_async_iteration_ends_on_a_normal_close() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for i in range(3):
            await send({"type": "websocket.send", "text": f"m{i}"})
        await send({"type": "websocket.close", "code": 1000, "reason": "that's all"})

    async with serving(app) as server, trunkline.websocket(ws_url(server)) as ws:
        assert [m async for m in ws] == ["m0", "m1", "m2"]
    assert ws.close_code == 1000 and ws.close_reason == "that's all"
    assert ws.closed_by == "server"


async def test_an_error_close_is_raised_by_iteration() -> None:
    async with serving(echo_app) as server, trunkline.websocket(ws_url(server, "/close")) as ws:
        with pytest.raises(WebSocketClosed) as closed:
            async for _ in ws:
                pass
        assert closed.value.code == 4001 and closed.value.reason == "bye now"
        assert closed.value.by == "server" and not isinstance(closed.value, TransportError)
        with pytest.raises(WebSocketClosed):
            await ws.send("too late")


async def test_an_asgi_send_after_the_end_raises_an_oserror() -> None:
    """ASGI asks a server to raise an OSError subclass from ``send`` once the WebSocket is
    gone (Starlette turns it into its WebSocketDisconnect): ours is a WebSocketClosed too."""
    raised: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except Exception as exc:
            raised.set_result(exc)
            raise
        raised.set_result(None)

    async with serving(app) as server:
        async with trunkline.websocket(ws_url(server)) as ws:
            await ws.close(1000, "done")
        error = await asyncio.wait_for(raised, 10)
    assert isinstance(error, AsgiWebSocketClosed) and isinstance(error, OSError)
    assert isinstance(error, WebSocketClosed) and error.code == 1000


async def test_transport_override_keeps_the_host_header(short_tmp: Path) -> None:
    sock = short_tmp / "h.sock"
    async with serving(echo_app, f"unix://{sock}") as _server:
        async with trunkline.websocket("ws://api.example:8080/scope",
                                       transport=f"unix://{sock}") as ws:
            scope = ast.literal_eval(await ws.recv())
        assert scope["headers"]["host"] == "api.example:8080"


async def test_denials_come_back_as_handshake_errors() -> None:
    async with serving(echo_app) as server:
        with pytest.raises(WebSocketHandshakeError) as denied:
            await trunkline.websocket(ws_url(server, "/deny"))
        assert denied.value.status == 403
        with pytest.raises(WebSocketHandshakeError) as teapot:
            async with trunkline.websocket(ws_url(server, "/teapot")):
                pass
        assert teapot.value.status == 418 and teapot.value.body == b"short and stout"
        assert (b"x-why", b"tea") in teapot.value.headers
        assert "418" in str(teapot.value)


async def test_app_failures() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/silent":
            return  # no accept: 500
        if scope["path"] == "/early":
            raise RuntimeError("before accept")  # 500
        await send({"type": "websocket.accept"})
        raise RuntimeError("after accept")  # close 1011

    async with serving(app) as server:
        for path in ("/silent", "/early"):
            with pytest.raises(WebSocketHandshakeError) as failed:
                await trunkline.websocket(ws_url(server, path))
            assert failed.value.status == 500
        async with trunkline.websocket(ws_url(server, "/late")) as ws:
            with pytest.raises(WebSocketClosed) as closed:
                await ws.recv()
        assert closed.value.code == 1011


async def test_invalid_upgrade_is_answered_without_the_app() -> None:
    called = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope)

    async with serving(app) as server:
        stream = await trunkline.connect(server.urls[0])
        stream.write(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade"
                     b"\r\nSec-WebSocket-Version: 13\r\n\r\n")  # no key
        reply = b""
        while chunk := await stream.read():
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 400 ") and b"Sec-WebSocket-Key" in reply
        assert [s for s in called if s["type"] != "lifespan"] == []


async def test_server_shutdown_closes_websockets_with_1001() -> None:
    async with serving(echo_app) as server:
        ws = await trunkline.websocket(ws_url(server))
        await ws.send("hi")
        assert await ws.recv() == "hi"
        await server.shutdown(grace=5.0)
        with pytest.raises(WebSocketClosed) as closed:
            await ws.recv()
        assert closed.value.code == 1001 and closed.value.ok and closed.value.by == "server"
        await ws.wait_closed()


async def test_shutdown_waits_for_the_apps_cleanup() -> None:
    cleaned = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        for _ in range(5):
            await asyncio.sleep(0)  # cleanup that takes a few turns of the loop
        cleaned.append(True)

    async with serving(app) as server:
        ws = await trunkline.websocket(ws_url(server))
        await ws.ping()
        await server.shutdown(grace=5.0)
        assert cleaned == [True]
        assert ws.close_code == 1001


# --------------------------------------------------------------------------- frameworks


def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_text(f"starlette:{text}")
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


def _fastapi_app() -> Any:
    app = FastAPI()

    @app.websocket("/ws/{room}")
    async def room(websocket: FastAPIWebSocket, room: str) -> None:
        await websocket.accept(subprotocol="chat")
        async for data in websocket.iter_json():
            await websocket.send_json({"room": room, "got": data})

    return app


@pytest.mark.parametrize("kind", ["unix", "fifo"])
async def test_starlette_and_fastapi_routes(kind: str, short_tmp: Path) -> None:
    url = f"unix://{short_tmp}/a.sock" if kind == "unix" else f"fifo://{short_tmp}/a.fifo"
    async with serving(_starlette_app(), url) as server, \
            trunkline.websocket(ws_url(server, "/ws")) as ws:
        await ws.send("hi")
        assert await ws.recv() == "starlette:hi"
    async with serving(_fastapi_app(), url) as server:
        async with trunkline.websocket(ws_url(server, "/ws/lobby"), subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
            await ws.send('{"n": 1}')
            assert await ws.recv() == '{"room":"lobby","got":{"n":1}}'
        with pytest.raises(WebSocketHandshakeError) as missing:
            await trunkline.websocket(ws_url(server, "/nowhere"))
        assert missing.value.status == 403


# --------------------------------------------------------------------------- TLS


async def test_wss_with_a_private_ca(tmp_path: Path, short_tmp: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    certfile, keyfile, cafile = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    ca.cert_pem.write_to_path(cafile)
    async with serving(echo_app, "tls://127.0.0.1:0", certfile=str(certfile),
                       keyfile=str(keyfile)) as server:
        port = server.addresses[0].port  # type: ignore[union-attr]
        async with trunkline.websocket(f"wss://localhost:{port}/scope",
                                       transport=f"tcp://127.0.0.1:{port}",
                                       verify=str(cafile)) as ws:
            assert ast.literal_eval(await ws.recv())["scheme"] == "wss"
            await ws.send("secret")
            assert await ws.recv() == "secret"
        async with trunkline.websocket(f"wss://127.0.0.1:{port}/", verify=str(cafile)) as ws:
            await ws.send(b"x" * 100_000)
            assert await ws.recv() == b"x" * 100_000
        context = ssl.create_default_context(cafile=str(cafile))
        async with ws_connect(f"wss://127.0.0.1:{port}/", ssl=context) as peer:
            await peer.send("from websockets")
            assert await peer.recv() == "from websockets"
        with pytest.raises(trunkline.CertificateVerifyError):
            await trunkline.websocket(f"wss://127.0.0.1:{port}/")  # system CAs: untrusted
    # TLS over a Unix socket (wss+unix): the websockets library serves it.
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    sock = short_tmp / "tls.sock"
    async with ws_unix_serve(_websockets_echo, str(sock), ssl=server_context):
        url = f"wss+unix://{str(sock).replace('/', '%2F')}/"
        async with trunkline.websocket(url, verify=str(cafile)) as ws:
            await ws.send("tls over uds")
            assert await ws.recv() == "tls over uds"


# --------------------------------------------------------------------------- failures


async def test_connect_failures(short_tmp: Path) -> None:
    with pytest.raises(ConnectError):
        await trunkline.websocket(f"ws+unix://{str(short_tmp / 'none.sock').replace('/', '%2F')}/")

    async def silent(stream: trunkline.Stream) -> None:
        await stream.read()  # takes the request, never answers
        await stream.read()

    async with await trunkline.serve(silent, "tcp://127.0.0.1:0") as server:
        url = "ws://" + server.urls[0].removeprefix("tcp://") + "/"
        with pytest.raises(ConnectTimeoutError):
            await trunkline.websocket(url, open_timeout=0.3)

    async def http_only(stream: trunkline.Stream) -> None:
        await stream.read()
        stream.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await stream.drain()

    async with await trunkline.serve(http_only, "tcp://127.0.0.1:0") as server:
        url = "ws://" + server.urls[0].removeprefix("tcp://") + "/"
        with pytest.raises(WebSocketHandshakeError) as refused:
            await trunkline.websocket(url)
        assert refused.value.status == 200 and refused.value.body == b"ok"
    with pytest.raises(AddressError):
        trunkline.websocket("http://127.0.0.1:1/")


# --------------------------------------------------------------------------- tracing


async def test_both_sides_trace_upgrade_messages_and_close(short_tmp: Path) -> None:
    server_tracer, client_tracer = Tracer(), Tracer()
    async with serving(echo_app, f"unix://{short_tmp}/t.sock", tracer=server_tracer) as server:
        async with trunkline.websocket(ws_url(server, "/t"), tracer=client_tracer) as ws:
            await ws.send("abc")
            await ws.recv()
            await ws.send(b"12345")
            await ws.recv()
        await ws.wait_closed()
    # leaving ``serving`` waited for the server's side of the connection to end too
    for tracer, side in ((client_tracer, "client"), (server_tracer, "server")):
        steps = [e.step for e in tracer.events if e.side == side]
        assert Step.UPGRADE in steps and Step.CLOSE in steps
        sends = [e.detail for e in tracer.events if e.step is Step.SEND]
        receives = [e.detail for e in tracer.events if e.step is Step.RECEIVE]
        assert {"bytes": 3, "opcode": "text"} in sends and {"bytes": 3, "opcode": "text"} \
            in receives
        assert {"bytes": 5, "opcode": "binary"} in sends
        close = [e.detail for e in tracer.events if e.step is Step.CLOSE and "code" in e.detail]
        assert close and close[-1]["code"] == 1000 and close[-1]["by"] == "client"
    upgrade = next(e for e in server_tracer.events if e.step is Step.UPGRADE)
    accept = next(e for e in server_tracer.events if e.step is Step.ACCEPT)
    assert upgrade.conn == accept.conn  # one connection number from accept to close


async def test_one_receiver_at_a_time() -> None:
    async with serving(echo_app) as server, trunkline.websocket(ws_url(server)) as ws:
        first = asyncio.ensure_future(ws.recv())
        await asyncio.sleep(0)  # let it start waiting
        with pytest.raises(RuntimeError, match="already waiting"):
            await ws.recv()
        await ws.send("for the first")
        assert await first == "for the first"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.05)  # a cancelled recv leaves no waiter
        await ws.send("again")
        assert await ws.recv() == "again"


PROTOCOL_CALLBACKS = ("connection_made", "data_received", "get_buffer", "buffer_updated",
                      "eof_received", "connection_lost", "pause_writing", "resume_writing")


async def test_the_public_websocket_is_not_the_protocol() -> None:
    """The event loop's callbacks live on the private protocol the WebSocket wraps, not on
    the object callers hold (issue 13)."""
    assert not [name for name in PROTOCOL_CALLBACKS if hasattr(trunkline.WebSocket, name)]
    async with serving(echo_app) as server, trunkline.websocket(ws_url(server)) as ws:
        assert isinstance(ws, trunkline.WebSocket)
        assert not isinstance(ws, asyncio.BaseProtocol)
        assert not [name for name in PROTOCOL_CALLBACKS if hasattr(ws, name)]
        await ws.send("still works")
        assert await ws.recv() == "still works"
