"""``trunkline serve echo``: one echo for every protocol. Each stream connection is sniffed:
an HTTP/1.x request line gets the HTTP echo (JSON, WebSocket), anything else the byte echo.

Against a ``trunkline serve echo`` subprocess (tcp, unix, fifo, udp): ``trunkline connect``
pipes, curl, WebSocket clients, raw sockets; and in-process ``EchoServer`` tests on both
loops for what a subprocess cannot show (a long sniff timeout proves "decided at once"
without timing anything; shutdown).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import trunkline
from tests.support.cli_helpers import Service, run
from trunkline.apps.echo_service import EchoServer
from trunkline.apps.sniff import looks_like_http

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


# --------------------------------------------------------------------------- the sniff rule


@pytest.mark.parametrize(("prefix", "verdict"), [
    (b"GET / HTTP/1.", True),
    (b"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (b"MKCALENDAR /cal HTTP/1.0\r\n", True),
    (b"G", None), (b"GET", None), (b"GET ", None), (b"GET /ind", None),
    (b"GET / ", None), (b"GET / H", None), (b"GET / HTTP/1", None),
    (b"g", False), (b"\x00", False), (b" GET", False), (b"\r\n", False), (b"Get / HTTP/1.1", False),
    (b"GET /a b", False), (b"GET / HTTP/2", False), (b"GET / HTTP/1,", False),
    (b"GET  / HTTP/1.1", False), (b"GET /\x00 HTTP/1.1", False), (b"GET /\r\n", False),
    (b"HELLO\n", False), (b"OK then\n", False), (b"A" * 21, False), (b"A" * 20, None),
])
def test_looks_like_http(prefix: bytes, verdict: bool | None) -> None:
    assert looks_like_http(prefix) is verdict


# --------------------------------------------------------------------------- the CLI service


@pytest.fixture(scope="module")
def echo() -> Iterator[dict[str, str]]:
    """One ``serve echo`` on tcp, unix, fifo and udp; URLs by kind, plus the socket path."""
    tmp = Path(tempfile.mkdtemp(prefix="tl-", dir="/tmp"))
    urls = ["tcp://127.0.0.1:0", f"unix://{tmp / 'e.sock'}", f"fifo://{tmp / 'e.fifo'}",
            "udp://127.0.0.1:0"]
    try:
        with Service(["serve", "echo", "-q", *[a for u in urls for a in ("--on", u)]]) as server:
            ready = server.wait_ready(len(urls))
            found = dict(zip(["tcp", "unix", "fifo", "udp"], ready, strict=True))
            found["path"] = str(tmp / "e.sock")
            yield found
            assert server.stop() == 0
        assert list(tmp.iterdir()) == []  # socket and FIFO files removed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _hostport(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def _raw_socket(echo: dict[str, str], kind: str) -> socket.socket:
    if kind == "tcp":
        s = socket.create_connection(_hostport(echo["tcp"]), timeout=10)
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(echo["path"])
    return s


def _read_to_eof(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("kind", ["tcp", "unix", "fifo"])
@pytest.mark.parametrize("start", [b"", b"PUT ", b"GET /x\x00"])
def test_connect_pipe_gets_bytes_back(echo: dict[str, str], kind: str, start: bytes) -> None:
    """Binary data, also starting like a method: every byte back, then EOF (half-close)."""
    data = start + os.urandom(200_000) + b"\0\r\n\xff" * 100
    done = run(["connect", echo[kind]], input=data)
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout == data


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_half_close_then_the_rest_comes_back(echo: dict[str, str], kind: str) -> None:
    with _raw_socket(echo, kind) as s:
        s.sendall(b"first ")
        assert s.recv(100) == b"first "
        s.sendall(b"then the rest")
        s.shutdown(socket.SHUT_WR)
        assert _read_to_eof(s) == b"then the rest"


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_one_byte_comes_back_without_more(echo: dict[str, str], kind: str) -> None:
    """A byte that is not A-Z is raw at once; an uppercase one alone is raw once the sniff
    gives up waiting (0.5 s); either way the client gets its byte while it waits."""
    for byte in (b"x", b"\x00", b"G"):
        with _raw_socket(echo, kind) as s:
            s.sendall(byte)
            assert s.recv(100) == byte
            more = b"ET / HTTP/1.1\r\n\r\n"  # decided: bytes from now on
            s.sendall(more)
            got = b""
            while len(got) < len(more):
                got += s.recv(100)
            assert got == more


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_a_raw_client_sending_a_request_line_gets_http(echo: dict[str, str], kind: str) -> None:
    with _raw_socket(echo, kind) as s:
        s.sendall(b"GET /raw?q=1 HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n")
        reply = _read_to_eof(s)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    seen = json.loads(body)
    assert (seen["method"], seen["path"], seen["query"]) == ("GET", "/raw", "q=1")
    assert seen["transport"]["kind"] == kind


@needs_curl
@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_curl_gets_the_json_echo(echo: dict[str, str], kind: str) -> None:
    assert CURL is not None
    if kind == "tcp":
        host, port = _hostport(echo["tcp"])
        where = [f"http://{host}:{port}/some/path?x=1&y=two"]
    else:
        where = ["--unix-socket", echo["path"], "http://echo/some/path?x=1&y=two"]
    done = subprocess.run([CURL, "-sS", "--fail", "-H", "X-Test: yes", "--data-binary",
                           "body bytes", *where], capture_output=True, timeout=20, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["method"] == "POST"
    assert seen["path"] == "/some/path"
    assert seen["query"] == "x=1&y=two"
    assert ["x-test", "yes"] in seen["headers"]
    assert seen["body"] == "body bytes"
    assert seen["transport"]["kind"] == kind


def _ws_url(echo: dict[str, str], kind: str) -> tuple[str, str | None]:
    """A ws:// URL and the transport to reach it over."""
    if kind == "tcp":
        host, port = _hostport(echo["tcp"])
        return f"ws://{host}:{port}/chat", None
    return "ws://echo/chat", echo[kind]


@pytest.mark.parametrize("kind", ["tcp", "unix", "fifo"])
async def test_websocket_messages_come_back(echo: dict[str, str], kind: str) -> None:
    url, via = _ws_url(echo, kind)
    async with trunkline.websocket(url, transport=via) as ws:
        await ws.send("text message")
        assert await ws.recv() == "text message"
        await ws.send(b"\x00binary\xff")
        assert await ws.recv() == b"\x00binary\xff"


@pytest.mark.parametrize("kind", ["tcp", "unix"])
async def test_the_websockets_library_too(echo: dict[str, str], kind: str) -> None:
    from websockets.asyncio.client import connect, unix_connect

    if kind == "tcp":
        url, _ = _ws_url(echo, kind)
        client = connect(url, open_timeout=10)
    else:
        client = unix_connect(echo["path"], "ws://echo/", open_timeout=10)
    async with client as ws:
        await ws.send("hi from websockets")
        assert await asyncio.wait_for(ws.recv(), 10) == "hi from websockets"


def test_udp_datagrams_come_back(echo: dict[str, str]) -> None:
    done = run(["connect", echo["udp"], "--wait", "1"], input=b"GET / HTTP/1.1\nplain")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"GET / HTTP/1.1\nplain\n"  # datagrams are never sniffed


@needs_curl
def test_tls_raw_and_https(tmp_path: Path) -> None:
    import trustme

    assert CURL is not None
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, cafile = tmp_path / "c.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    ca.cert_pem.write_to_path(cafile)
    with Service(["serve", "echo", "-q", "--on", "tls://127.0.0.1:0", "--cert",
                  str(certfile)]) as server:
        [url] = server.wait_ready()
        # TLS cannot half-close: the echo stays open, connect gives up after --wait
        done = run(["connect", url, "--cafile", str(cafile), "--wait", "1"], input=b"secret\n")
        assert (done.returncode, done.stdout) == (0, b"secret\n"), done.stderr
        host, port = _hostport(url)
        done = subprocess.run([CURL, "-sS", "--fail", "--cacert", str(cafile),
                               f"https://{host}:{port}/tls?on=1"], capture_output=True,
                              timeout=20, check=False)
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        assert (seen["scheme"], seen["path"], seen["query"]) == ("https", "/tls", "on=1")
        assert server.stop() == 0


def test_help_says_echo_speaks_http_too() -> None:
    done = run(["serve", "--help"])
    text = done.stdout.decode()
    assert done.returncode == 0
    assert "HTTP/1." in text and "http-echo" in text and "GET / HTTP/1.1" in text


# --------------------------------------------------------------------------- in-process

both_loops = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])


async def _open(server: EchoServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = _hostport(server.urls[0])
    return await asyncio.open_connection(host, port)


@both_loops
async def test_decided_at_once_when_the_first_bytes_tell() -> None:
    # With a sniff timeout far beyond the read deadline, a reply proves no wait happened.
    async with EchoServer("tcp://127.0.0.1:0", sniff_timeout=600) as server:
        for first in (b"x", b"\x7f", b"GET /a b", b"GET /\r\n", b"POST  "):
            reader, writer = await _open(server)
            writer.write(first)
            assert await asyncio.wait_for(reader.readexactly(len(first)), 10) == first
            writer.close()
        # an ambiguous prefix then EOF: raw, and the EOF comes back after the bytes
        reader, writer = await _open(server)
        writer.write(b"GE")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 10) == b"GE"
        writer.close()
        # HTTP in pieces: waits while ambiguous, then the HTTP server gets every byte
        reader, writer = await _open(server)
        for piece in (b"G", b"ET /p", b"iece HTTP/1", b".1\r\nHost: x\r\n", b"\r\n"):
            writer.write(piece)
            await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 ")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = json.loads(await asyncio.wait_for(reader.readexactly(length), 10))
        assert body["path"] == "/piece"
        writer.close()


@both_loops
async def test_unix_and_datagram_addresses_together(short_tmp: Path) -> None:
    sock = short_tmp / "e.sock"
    async with EchoServer(f"unix://{sock}", "udp://127.0.0.1:0") as server:
        assert server.urls[0] == f"unix://{sock}"
        assert server.urls[1].startswith("udp://127.0.0.1:")
        stream = await trunkline.connect(server.urls[0])
        await stream.send(b"\x01\x02 over unix")
        assert await asyncio.wait_for(stream.readexactly(12), 10) == b"\x01\x02 over unix"
        stream.write_eof()
        assert await asyncio.wait_for(stream.read(), 10) == b""
        await stream.aclose()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.setblocking(False)
            u.sendto(b"GET / HTTP/1.1", _hostport(server.urls[1]))
            loop = asyncio.get_running_loop()
            assert await asyncio.wait_for(loop.sock_recv(u, 2048), 10) == b"GET / HTTP/1.1"
    assert not sock.exists()


@both_loops
async def test_shutdown_closes_idle_and_undecided_lets_byte_echo_run_to_the_grace() -> None:
    server = await EchoServer("tcp://127.0.0.1:0", sniff_timeout=600).start()
    silent = await _open(server)  # nothing sent: undecided
    raw = await _open(server)
    raw[1].write(b"raw ")
    assert await asyncio.wait_for(raw[0].readexactly(4), 10) == b"raw "
    idle = await _open(server)  # an HTTP keep-alive connection between requests
    idle[1].write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(idle[0].readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1")
    server.close()
    assert await asyncio.wait_for(silent[0].read(), 10) == b""
    await asyncio.wait_for(idle[0].read(), 10)  # the rest of the body, then EOF
    assert idle[0].at_eof()
    raw[1].write(b"still echoing")  # within the grace the byte echo goes on
    assert await asyncio.wait_for(raw[0].readexactly(13), 10) == b"still echoing"
    await asyncio.wait_for(server.wait_closed(grace=0.2), 10)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(raw[0].readexactly(1), 10)  # aborted after the grace
    for _, writer in (silent, raw, idle):
        writer.close()
