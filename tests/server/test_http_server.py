"""The HTTP/1.1 server over real sockets: framing, limits, keep-alive, pipelining, timeouts."""

from __future__ import annotations

import asyncio
import json
import logging
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from tests.protocol.test_http_server_core import AMBIGUOUS, UNSUPPORTED_VERSION
from tests.support.http_server_support import Raw, exchange, running, statuses
from trunkline.apps import echo_app, hello_app
from trunkline.server.cycle import Receive, Scope, Send
from trunkline.trace import Step, Tracer

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def tcp_url(server: Any) -> str:
    return server.urls[0]


# --------------------------------------------------------------------------- framing


@pytest.mark.parametrize("bytewise", [False, True], ids=["one-write", "byte-by-byte"])
async def test_framing_ambiguities_get_400_and_close(bytewise: bool) -> None:
    async with running(echo_app) as server:
        for name, wire in sorted(AMBIGUOUS.items()):
            received, closed = await exchange(tcp_url(server), wire, bytewise=bytewise)
            assert statuses(received) == [400], (name, received[:200])
            assert closed, name
        received, closed = await exchange(tcp_url(server), UNSUPPORTED_VERSION,
                                          bytewise=bytewise)
        assert statuses(received) == [505] and closed


SMALL = {"max_request_line": 64, "max_header_bytes": 256, "max_header_count": 5,
         "max_body_bytes": 64}
LIMIT_CASES = {
    "request line": (b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    "request line without end": (b"GET /" + b"a" * 200, 414),
    "header bytes": (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 300 + b"\r\n\r\n", 431),
    "header value without end": (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 300, 431),
    "header count": (b"GET / HTTP/1.1\r\nHost: t\r\n"
                     + b"".join(b"X%d: 1\r\n" % i for i in range(6)) + b"\r\n", 431),
    "content-length": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 65\r\n\r\n"
                       + b"x" * 65, 413),
    "chunked body": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + b"20\r\n" + b"x" * 32 + b"\r\n" + b"21\r\n" + b"x" * 33 + b"\r\n0\r\n\r\n",
                     413),
}


@pytest.mark.parametrize("bytewise", [False, True], ids=["one-write", "byte-by-byte"])
@pytest.mark.parametrize("case", sorted(LIMIT_CASES))
async def test_limits_answer_and_close(case: str, bytewise: bool) -> None:
    wire, status = LIMIT_CASES[case]
    async with running(echo_app, **SMALL) as server:
        received, closed = await exchange(tcp_url(server), wire, bytewise=bytewise)
        assert statuses(received) == [status] and closed
        # the limit is not off by one: a request just inside it passes
        ok = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 64\r\n\r\n" + b"x" * 64
        raw = await Raw.open(tcp_url(server))
        await raw.send(ok, bytewise=bytewise)
        assert (await raw.read_response())[0] == 200
        await raw.close()


async def test_default_limits() -> None:
    async with running(echo_app) as server:
        url = tcp_url(server)
        cases = [
            (b"GET /" + b"a" * 8192 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * (16 * 1024) + b"\r\n\r\n", 431),
            (b"GET / HTTP/1.1\r\nHost: t\r\n"
             + b"".join(b"X%d: 1\r\n" % i for i in range(100)) + b"\r\n", 431),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n", 413),
        ]
        for wire, status in cases:
            received, closed = await exchange(url, wire)
            assert statuses(received) == [status] and closed


# --------------------------------------------------------------------------- HTTP/1.1 behaviour


async def test_keep_alive_pipelining_and_order() -> None:
    order: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            await asyncio.sleep(0.05)  # finishes after the ones behind it would have
        order.append(scope["path"])
        body = scope["path"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async with running(app) as server:
        raw = await Raw.open(tcp_url(server))
        paths = ["/slow", "/a", "/b", "/c", "/post", "/d"]
        wire = b"".join(
            (b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz" if p == "/post"
             else b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n") % p.encode() for p in paths)
        await raw.send(wire)
        bodies = [(await raw.read_response())[2] for _ in paths]
        assert bodies == [p.encode() for p in paths]
        assert order == paths
        # still open: keep-alive
        await raw.send(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await raw.read_response())[2] == b"/again"
        await raw.close()


async def test_chunked_both_ways() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        pieces = []
        while True:
            message = await receive()
            pieces.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for piece in pieces:
            if piece:
                await send({"type": "http.response.body", "body": piece.upper(),
                            "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async with running(app) as server:
        raw = await Raw.open(tcp_url(server))
        await raw.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n")
        status, headers, body = await raw.read_response()
        assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
        assert body == b"WIKIPEDIA"
        await raw.close()


async def test_expect_100_continue() -> None:
    async with running(echo_app) as server:
        raw = await Raw.open(tcp_url(server))
        await raw.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                       b"Content-Length: 5\r\n\r\n")
        async with asyncio.timeout(5):
            while b"\r\n\r\n" not in raw.received:
                raw.received += await raw.stream.read()
        assert raw.received == b"HTTP/1.1 100 Continue\r\n\r\n"
        raw.received = b""
        await raw.send(b"hello")
        status, _, body = await raw.read_response()
        assert status == 200 and json.loads(body)["body"] == "hello"
        await raw.close()


async def test_expect_100_continue_refused_without_reading() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"no"})

    async with running(app) as server:
        received, closed = await exchange(
            tcp_url(server), b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
            b"Content-Length: 5\r\n\r\n")
        assert b"100 Continue" not in received and statuses(received) == [401] and closed


async def test_head_http10_connection_close_date_server() -> None:
    async with running(hello_app) as server:
        url = tcp_url(server)
        raw = await Raw.open(url)
        await raw.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + GET)
        status, headers, body = await raw.read_response(head=True)
        assert status == 200 and body == b"" and headers["content-length"] == "14"
        assert headers["server"] == "trunkline"
        assert parsedate_to_datetime(headers["date"]).tzinfo is not None
        status, headers, body = await raw.read_response()  # the HEAD had no body on the wire
        assert body == b"Hello, world!\n"
        await raw.close()

        received, closed = await exchange(url, b"GET / HTTP/1.0\r\n\r\n")
        assert received.startswith(b"HTTP/1.1 200 OK\r\n") and closed
        assert b"connection: close" in received.lower()

        raw = await Raw.open(url)
        await raw.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, _ = await raw.read_response()
        assert headers["connection"] == "keep-alive"
        await raw.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        status, headers, _ = await raw.read_response()
        assert headers["connection"] == "close"
        await raw.read_until_closed()
        assert raw.closed


async def test_http10_streamed_response_is_close_delimited() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ab", "more_body": True})
            await send({"type": "http.response.body", "body": b"cd"})

    async with running(app) as server:
        received, closed = await exchange(tcp_url(server),
                                          b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert closed and received.endswith(b"\r\n\r\nabcd") and b"chunked" not in received


# --------------------------------------------------------------------------- resources


async def test_backpressure_bounds_buffered_body() -> None:
    seen: list[int] = []
    total = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal total
        if scope["type"] != "http":
            return
        (conn,) = server.state.connections
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            seen.append(conn._buffered)
            for _ in range(20):  # a slow consumer: the client gets well ahead of it
                await asyncio.sleep(0)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % total})

    size = 16 * 1024 * 1024
    async with running(app, max_body_bytes=None, body_buffer=64 * 1024) as server:
        raw = await Raw.open(tcp_url(server))
        raw.stream.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b"x" * 65536
        for _ in range(size // len(chunk)):
            raw.stream.write(chunk)
            await raw.stream.drain()
        status, _, body = await raw.read_response()
        assert status == 200 and body == str(size).encode()
        # never more than the buffer plus one read was held for the app
        assert max(seen) <= 64 * 1024 + 256 * 1024
        await raw.close()


async def test_slowloris_gets_408() -> None:
    async with running(hello_app, header_timeout=0.5) as server:
        raw = await Raw.open(tcp_url(server))
        trickle = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 10_000

        async def drip() -> None:
            for i in range(len(trickle)):
                raw.stream.write(trickle[i:i + 1])
                await asyncio.sleep(0.05)  # the attack itself is the slowness

        dripping = asyncio.create_task(drip())
        try:
            received = await raw.read_until_closed(timeout=10)
        finally:
            dripping.cancel()
        assert statuses(received) == [408] and raw.closed
        assert not dripping.done() or dripping.cancelled()


async def test_idle_keep_alive_timeout_closes() -> None:
    async with running(hello_app, keepalive_timeout=0.3) as server:
        raw = await Raw.open(tcp_url(server))
        await raw.send(GET)
        assert (await raw.read_response())[0] == 200
        rest = await raw.read_until_closed(timeout=10)
        assert rest == b"" and raw.closed


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_a_busy_keep_alive_connection_outlives_the_idle_timeout() -> None:
    """Answers run inside the read callback: each one must still restart the idle clock,
    so requests back to back for several idle periods are all answered."""
    async with running(hello_app, keepalive_timeout=0.3) as server:
        raw = await Raw.open(tcp_url(server))
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.2
        answered = 0
        while loop.time() < end:
            await raw.send(GET)
            assert (await raw.read_response())[0] == 200, f"closed after {answered} answers"
            answered += 1
        assert not raw.closed
        await raw.close()


async def test_silent_connection_is_closed_after_header_timeout() -> None:
    async with running(hello_app, header_timeout=0.3) as server:
        raw = await Raw.open(tcp_url(server))
        assert await raw.read_until_closed(timeout=10) == b""


async def test_connection_cap_answers_503() -> None:
    async with running(hello_app, max_connections=2) as server:
        url = tcp_url(server)
        held = [await Raw.open(url) for _ in range(2)]
        for raw in held:
            await raw.send(GET)
            assert (await raw.read_response())[0] == 200
        received, closed = await exchange(url, GET)
        assert statuses(received) == [503] and closed
        await held[0].close()
        async with asyncio.timeout(5):
            while len(server.state.connections) > 1:
                await asyncio.sleep(0.01)
        again = await Raw.open(url)
        await again.send(GET)
        assert (await again.read_response())[0] == 200
        for raw in (held[1], again):
            await raw.close()


# --------------------------------------------------------------------------- app errors, logs


async def test_app_errors_become_500_or_close(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/raise":
            raise ValueError("boom")
        if scope["path"] == "/nothing":
            return
        if scope["path"] == "/bad-header":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"x", b"a\r\nset-cookie: evil")]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("after the head")

    caplog.set_level(logging.ERROR, "trunkline.server")
    async with running(app) as server:
        raw = await Raw.open(tcp_url(server))
        for path in (b"/raise", b"/nothing", b"/bad-header"):
            await raw.send(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path)
            status, _, body = await raw.read_response()
            assert status == 500 and body == b"Internal Server Error"
        await raw.send(b"GET /partial HTTP/1.1\r\nHost: t\r\n\r\n")
        received = await raw.read_until_closed()
        assert b"evil" not in received and raw.closed
    assert "boom" in caplog.text and "without starting" in caplog.text


async def test_access_log_names_transport_and_peer(caplog: pytest.LogCaptureFixture,
                                                   short_tmp: Path) -> None:
    caplog.set_level(logging.INFO, "trunkline.access")
    sock = short_tmp / "a.sock"
    async with running(hello_app, "tcp://127.0.0.1:0", f"unix://{sock}") as server:
        for url in server.urls:
            raw = await Raw.open(url)
            await raw.send(b"GET /x?y=1 HTTP/1.1\r\nHost: t\r\n\r\n")
            await raw.read_response()
            await raw.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "trunkline.access"]
    assert any(line.startswith("tcp 127.0.0.1:") and '"GET /x?y=1 HTTP/1.1" 200 14' in line
               for line in lines), lines
    import os
    assert any(line.startswith(f"unix {sock} pid={os.getpid()} uid={os.getuid()}")
               for line in lines), lines


async def test_access_log_follows_level_changes_at_once(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    # The server reads logging's cache of isEnabledFor per response (accesslog.ENABLED):
    # a level set, logging.disable or a disabled logger counts from the next response.
    caplog.set_level(logging.INFO)
    access = logging.getLogger("trunkline.access")
    before = access.level
    try:
        async with running(hello_app) as server:
            raw = await Raw.open(tcp_url(server))

            async def get(path: bytes) -> None:
                await raw.send(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path)
                await raw.read_response()

            access.setLevel(logging.WARNING)
            await get(b"/quiet-1")
            access.setLevel(logging.INFO)
            await get(b"/logged-1")
            logging.disable(logging.INFO)
            await get(b"/quiet-2")
            logging.disable(logging.NOTSET)
            await get(b"/logged-2")
            access.disabled = True
            await get(b"/quiet-3")
            access.disabled = False
            await get(b"/logged-3")
            await raw.close()
    finally:
        access.disabled = False
        logging.disable(logging.NOTSET)
        access.setLevel(before)
    paths = [r.path for r in caplog.records if r.name == "trunkline.access"]  # type: ignore[attr-defined]
    assert paths == ["/logged-1", "/logged-2", "/logged-3"], paths


async def test_tracer_records_server_steps_with_trace_id() -> None:
    tracer = Tracer()
    async with running(hello_app, tracer=tracer) as server:
        raw = await Raw.open(tcp_url(server))
        await raw.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Trunkline-Trace-Id: abc123\r\n"
                       b"Connection: close\r\n\r\n")
        await raw.read_until_closed()
        async with asyncio.timeout(5):
            while not any(e.step is Step.CLOSE for e in tracer.events):
                await asyncio.sleep(0.01)
    steps = [e.step for e in tracer.events]
    for step in (Step.ACCEPT, Step.REQUEST_HEADERS, Step.APP_CALL, Step.RESPONSE_START,
                 Step.RESPONSE_DONE, Step.CLOSE):
        assert step in steps
    assert all(e.side == "server" for e in tracer.events)
    for event in tracer.events:
        if event.step in (Step.REQUEST_HEADERS, Step.RESPONSE_START, Step.RESPONSE_DONE):
            assert event.detail["trace_id"] == "abc123"
    close = next(e for e in tracer.events if e.step is Step.CLOSE)
    assert close.detail["by"] == "server"


# --------------------------------------------------------------------------- upgrade seam


async def test_websocket_upgrade_goes_to_the_hook() -> None:
    got: list[Any] = []

    def handler(handoff: Any) -> None:
        got.append(handoff)
        handoff.transport.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\nswitched")
        handoff.transport.close()

    wire = (b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"\r\n\x81\x00")
    async with running(hello_app, websocket_handler=handler) as server:
        received, closed = await exchange(tcp_url(server), wire)
        assert received.endswith(b"switched") and closed
        (handoff,) = got
        assert handoff.head.path == "/ws" and handoff.data == b"\x81\x00"
        assert handoff.scope["path"] == "/ws"

    async with running(hello_app) as server:  # no hook: the app answers, then close
        received, closed = await exchange(tcp_url(server), wire)
        assert statuses(received) == [200] and closed


async def test_half_closed_client_still_gets_its_answers() -> None:
    async with running(hello_app) as server:
        raw = await Raw.open(tcp_url(server))
        await raw.send(GET + GET)
        raw.stream.write_eof()  # shutdown(SHUT_WR): "that is all I will ask"
        received = await raw.read_until_closed()
        assert statuses(received) == [200, 200] and raw.closed


@pytest.mark.parametrize("bytewise", [False, True], ids=["one-write", "byte-by-byte"])
async def test_requests_before_a_bad_one_are_answered_first(bytewise: bool) -> None:
    async with running(hello_app) as server:
        received, closed = await exchange(
            tcp_url(server), GET + GET + b"GET / HTTP/1.1\r\nHost : t\r\n\r\n" + GET,
            bytewise=bytewise)
        assert statuses(received) == [200, 200, 400] and closed
