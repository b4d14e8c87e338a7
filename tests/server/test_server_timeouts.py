"""Body-read and send timeouts (issue 10.10): a client that trickles a body and stops, or that
never reads a large answer, no longer holds a connection forever. Small timeouts stand in for
nginx's 60 s defaults; the tests wait for the server's close, never on a sleep."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_helpers import Service
from tests.support.http_server_support import Raw, running, statuses
from trunkline.server import ServerConfig
from trunkline.server.cycle import Receive, Scope, Send

both_loops = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

KiB = 1024
HEAD = b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"


def test_defaults_are_nginx_like() -> None:
    config = ServerConfig()
    assert config.body_timeout == 60.0 and config.send_timeout == 60.0


async def body_reader(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers its size; ``/early`` answers first."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/early":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started ", "more_body": True})
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] != "/early":
        await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"%d" % size})


@pytest.fixture(params=["tcp", "unix"])
def url(request: Any, short_tmp: Path) -> str:
    return "tcp://127.0.0.1:0" if request.param == "tcp" else f"unix://{short_tmp}/t.sock"


@both_loops
async def test_a_trickled_body_that_stops_gets_408(url: str, caplog: Any) -> None:
    caplog.set_level(logging.INFO, "trunkline.server")
    async with running(body_reader, url, body_timeout=0.3) as server:
        raw = await Raw.open(server.urls[0])
        await raw.send(HEAD)
        for _ in range(5):  # a trickle, then nothing more
            await raw.send(b"x")
        received = await raw.read_until_closed()
        await raw.close()
    assert statuses(received) == [408] and raw.closed
    assert b"body timeout" in received
    assert any("body timeout" in r.getMessage() and "408" in r.getMessage()
               for r in caplog.records)


@both_loops
async def test_a_body_that_keeps_coming_is_not_cut(url: str) -> None:
    """Each read pushes the deadline back: a body in pieces well within it completes."""
    async with running(body_reader, url, body_timeout=5.0) as server:
        raw = await Raw.open(server.urls[0])
        await raw.send(HEAD)
        for _ in range(10):
            await raw.send(b"x" * 10)
            await asyncio.sleep(0.01)  # pieces, not a wait for readiness
        status, _, body = await raw.read_response()
        await raw.close()
    assert (status, body) == (200, b"100")


@both_loops
async def test_a_body_timeout_after_the_answer_started_is_a_plain_close(
        url: str, caplog: Any) -> None:
    caplog.set_level(logging.INFO, "trunkline.server")
    async with running(body_reader, url, body_timeout=0.3) as server:
        raw = await Raw.open(server.urls[0])
        await raw.send(HEAD.replace(b"/up", b"/early") + b"x" * 10)
        received = await raw.read_until_closed()
        await raw.close()
    assert statuses(received) == [200] and b"408" not in received and raw.closed
    assert any("body timeout" in r.getMessage() and "closing" in r.getMessage()
               for r in caplog.records)


@both_loops
async def test_the_body_clock_waits_for_an_app_that_does_not_read(url: str) -> None:
    """Reading paused because the app holds the body: not the client's delay."""
    release = asyncio.Event()
    conns: list[Any] = []

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        conns.append(send.__self__.conn)  # type: ignore[attr-defined]
        await release.wait()
        await body_reader(scope, receive, send)

    big = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 300000\r\n\r\n"
    async with running(slow_app, url, body_timeout=0.2, body_buffer=16 * KiB) as server:
        raw = await Raw.open(server.urls[0])
        sender = asyncio.ensure_future(raw.send(big + b"y" * 300000))
        async with asyncio.timeout(10):  # the server stopped reading: its buffer is full
            while not (conns and conns[0]._read_paused):  # noqa: SLF001
                await asyncio.sleep(0.01)
        assert conns[0]._deadline is None  # noqa: SLF001 - no clock runs against the client
        assert not raw.closed
        release.set()
        status, _, body = await raw.read_response()
        await sender
        await raw.close()
    assert (status, body) == (200, b"300000")


@both_loops
async def test_a_client_that_never_reads_is_cut_after_the_send_timeout(
        url: str, caplog: Any) -> None:
    caplog.set_level(logging.INFO, "trunkline.server")
    finished: list[str] = []
    started = asyncio.Event()

    async def big(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started.set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"z" * (64 * KiB)
        for _ in range(512):  # 32 MiB: more than every kernel buffer on the way
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        finished.append((await receive())["type"])

    async with running(big, url, send_timeout=0.3) as server:
        family, address = _socket_address(server.urls[0])
        with socket.socket(family, socket.SOCK_STREAM) as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * KiB)
            client.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_connect(client, address)
            await loop.sock_sendall(client, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            async with asyncio.timeout(20):  # the server gives up on us: its count drops
                await started.wait()
                while server.connections:
                    await asyncio.sleep(0.02)
            got = 0
            with pytest.raises(ConnectionError):  # now read: what came, then a reset
                while chunk_in := await loop.sock_recv(client, 1 << 20):
                    got += len(chunk_in)
                raise ConnectionResetError("closed without a reset")
        assert 0 < got < 512 * 64 * KiB
    assert any("send timeout" in r.getMessage() for r in caplog.records)


def _socket_address(url: str) -> tuple[socket.AddressFamily, Any]:
    if url.startswith("tcp://"):
        host, port = url[len("tcp://"):].rsplit(":", 1)
        return socket.AF_INET, (host, int(port))
    return socket.AF_UNIX, url[len("unix://"):]


def test_cli_timeouts(short_tmp: Path) -> None:
    """``trunkline serve --timeout-body S --timeout-send S``: shown in --help, and in force."""
    from tests.support.cli_helpers import run

    help_text = run(["serve", "--help"]).stdout.decode()
    assert "--timeout-body" in help_text and "--timeout-send" in help_text
    bad = run(["serve", "hello", "--on", "tcp://127.0.0.1:0", "--timeout-body", "-1"])
    assert bad.returncode == 2 and b"--timeout-body" in bad.stderr
    sock_path = short_tmp / "c.sock"
    service = Service(["serve", "http-echo", "--on", f"unix://{sock_path}",
                       "--timeout-body", "0.3", "--timeout-send", "5"])
    try:
        service.wait_ready()
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(10)
            client.connect(str(sock_path))
            client.sendall(HEAD + b"abc")
            received = b""
            while chunk := client.recv(65536):
                received += chunk
        assert statuses(received) == [408]
        service.wait_for_line(r"body timeout")
    finally:
        service.kill()
