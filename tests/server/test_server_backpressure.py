"""A client that pipelines requests (or WebSocket pings and messages) and never reads its
answers: what the server holds for it stays bounded, on every stream kind, and other clients
are served meanwhile.

HTTP: the server stops reading the client while its writing is paused. The transport's
write buffer stays under its high-water mark (64 KiB; 512 KiB for TLS, asyncio's and
uvloop's defaults) plus one response, and the parsed requests waiting behind the one in
flight stay under twice ``max_pipelined`` (the core parses at most that many heads per read
and holds the rest of a read as bytes).

WebSocket (full duplex, so reading goes on while only the app's sends wait): the write
buffer stays under its high-water mark plus the automatic answers allowed while the peer
does not read (``write_limit``) plus those of one read, plus one message of the app; the
messages held for the app stay under ``max_queue`` plus one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

import trunkline
from tests.support.http_server_support import Raw, running
from tests.support.websocket_support import (
    PING,
    TEXT,
    RawPeer,
    echo_app,
    frame,
    handshake_request,
    serving,
    ws_url,
)
from trunkline.apps.hello import hello_app
from trunkline.transport.base import ConnectOptions

both_loops = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

KiB = 1024
REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
#: What the hog offers: ~1.7 million requests; before the fix the server answered them as
#: fast as it could parse them, buffering ~150 bytes per answer (hundreds of MB).
PUSH_BYTES = 48 * 1024 * KiB
PUSH_SECONDS = 1.0  # the hog stops then; an unbounded server buffered megabytes by then
CLI_PUSH_SECONDS = 4.0
#: a send blocked this long: the server stopped reading the hog (it never starts again, as the
#: hog never reads), so pushing on until CLI_PUSH_SECONDS would only wait
CLI_STALL_SECONDS = 1.0
RSS_GROWTH_KIB = 16 * 1024  # trunkline serve hello under one such hog (it grew ~80 MB)


@dataclass
class Kind:
    listen: str
    dial: str
    config: dict[str, Any]
    client_ssl: ssl.SSLContext | None = None


@contextlib.contextmanager
def kind_setup(name: str, tmp: Path) -> Any:
    if name == "tcp":
        yield Kind("tcp://127.0.0.1:0", "", {})
    elif name == "tls":
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        certfile, keyfile = tmp / "c.pem", tmp / "k.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(certfile)
        cert.private_key_pem.write_to_path(keyfile)
        client = ssl.create_default_context()
        ca.configure_trust(client)
        yield Kind("tls://127.0.0.1:0", "", {"certfile": str(certfile),
                                             "keyfile": str(keyfile)}, client)
    elif name == "unix":
        yield Kind(f"unix://{tmp}/s.sock", "", {})
    elif name == "abstract":
        yield Kind(f"unix:@tl-bp-{os.urandom(6).hex()}", "", {})
    elif name == "fifo":
        yield Kind(f"fifo://{tmp}/s.fifo", "", {})
    elif name == "fd":
        listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        yield Kind(f"fd://{listening.detach()}", f"tcp://127.0.0.1:{port}", {})
    else:  # pragma: no cover
        raise ValueError(name)


KINDS = ["tcp", "tls", "unix", "abstract", "fifo", "fd"]


async def dial(kind: Kind, url: str, limit: int = 64 * KiB) -> trunkline.Stream:
    options = ConnectOptions(timeout=5.0, ssl=kind.client_ssl)
    return await trunkline.connect(kind.dial or url, options=options, limit=limit)


@dataclass
class FakeServer:
    urls: list[str]  # what ws_url reads


@dataclass
class Held:
    over: int = -1 << 30  # the most a transport's write buffer was over its high-water mark
    waiting: int = 0  # the most parsed requests seen waiting
    queued: int = 0  # the most WebSocket message bytes seen held for the app


def measure(server: Any, held: Held) -> None:
    """What the server holds for its connections now, folded into ``held``."""
    for conn in list(server.state.connections):
        transport = getattr(conn, "transport", None) or conn.ws.transport
        if transport is None or transport.is_closing():
            continue
        high = transport.get_write_buffer_limits()[1]
        held.over = max(held.over, transport.get_write_buffer_size() - high)
        held.waiting = max(held.waiting, len(getattr(conn, "_queue", ())))
        ws = getattr(conn, "ws", None)
        if ws is not None:
            held.queued = max(held.queued, ws.queued)


async def push(stream: trunkline.Stream, chunk: bytes, server: Any, held: Held) -> int:
    """Write ``chunk`` over and over, never reading, for at most PUSH_SECONDS or
    PUSH_BYTES; measure the server after every drain. Returns the bytes written."""
    sent = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(PUSH_SECONDS):
            while sent < PUSH_BYTES:
                stream.write(chunk)
                sent += len(chunk)
                await stream.drain()
                measure(server, held)
    measure(server, held)
    return sent


@contextlib.asynccontextmanager
async def pushing(stream: trunkline.Stream, chunk: bytes, server: Any, held: Held
                  ) -> AsyncIterator[asyncio.Task[int]]:
    task = asyncio.ensure_future(push(stream, chunk, server, held))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@both_loops
@pytest.mark.parametrize("name", KINDS)
async def test_pipelined_requests_never_read_keep_the_server_bounded(
        name: str, short_tmp: Path) -> None:
    with kind_setup(name, short_tmp) as kind:
        async with running(hello_app, kind.listen, access_log=False, **kind.config) as server:
            url = server.urls[0]
            hog = await dial(kind, url)
            held = Held()
            try:
                async with pushing(hog, REQUEST * 1024, server, held) as pusher:
                    sent = await asyncio.wait_for(asyncio.shield(pusher), PUSH_SECONDS + 5)
                    # The server stopped reading the hog: it took far less than was offered.
                    assert sent < PUSH_BYTES
                    assert held.over <= 4 * KiB, held  # one answer over the mark at most
                    assert held.waiting <= 2 * server.config.max_pipelined, held
                    # Another client is served meanwhile (the hog is still connected).
                    other = Raw(await dial(kind, url))
                    await other.send(REQUEST)
                    status, _, body = await other.read_response()
                    assert (status, body) == (200, b"Hello, world!\n")
                    await other.close()
                    measure(server, held)
                    assert held.over <= 4 * KiB, held
                # Once the hog reads, every request it got through is answered, in order.
                reader = Raw(hog)
                for _ in range(200):
                    status, _, body = await reader.read_response()
                    assert status == 200
            finally:
                hog.abort()


@both_loops
@pytest.mark.parametrize("name", KINDS)
async def test_websocket_pings_and_messages_never_read_keep_the_server_bounded(
        name: str, short_tmp: Path) -> None:
    with kind_setup(name, short_tmp) as kind:
        async with serving(echo_app, kind.listen, **kind.config) as server:
            url = server.urls[0]
            stream = await dial(kind, url)
            peer = RawPeer(stream)
            stream.write(handshake_request("/"))
            assert (await peer.read_head()).startswith(b"HTTP/1.1 101")
            held = Held()
            chunk = (frame(PING, b"p" * 100) + frame(TEXT, b"m" * 400)) * 64
            try:
                async with pushing(stream, chunk, server, held) as pusher:
                    sent = await asyncio.wait_for(asyncio.shield(pusher), PUSH_SECONDS + 5)
                    assert sent < PUSH_BYTES
                    # write_limit (64 KiB) of pongs, one read's answers (64 KiB), one message
                    assert held.over <= 2 * 64 * KiB + 4 * KiB, held
                    assert held.queued <= 1024 * KiB + 64 * KiB, held
                    async with trunkline.websocket(
                            ws_url(FakeServer([kind.dial or url])),
                            verify=kind.client_ssl or True) as other:
                        await other.send("still served")
                        assert await other.recv() == "still served"
            finally:
                stream.abort()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_cli_serve_hello_stays_bounded_under_a_client_that_never_reads(
        short_tmp: Path) -> None:
    """The reported case: ``trunkline serve hello`` on TCP and a Unix socket, one client
    pipelining keep-alive GETs for a few seconds without reading (it grew ~21 MB/s before).
    The server's RSS grows by less than RSS_GROWTH_KIB, and it answers another client."""
    from tests.support.cli_helpers import Service

    sock_path = short_tmp / "h.sock"
    service = Service(["serve", "hello", "--on", "tcp://127.0.0.1:0",
                       "--on", f"unix://{sock_path}", "-q"])
    try:
        tcp_url, _ = service.wait_ready(2)
        port = int(tcp_url.rsplit(":", 1)[1])
        pid = service.proc.pid
        for family, address in ((socket.AF_INET, ("127.0.0.1", port)),
                                (socket.AF_UNIX, str(sock_path))):
            before = rss_kib(pid)
            peak = before
            with socket.socket(family, socket.SOCK_STREAM) as hog:
                hog.connect(address)
                hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)
                chunk = REQUEST * 2048
                sent = 0
                deadline = time.monotonic() + CLI_PUSH_SECONDS
                while (left := deadline - time.monotonic()) > 0:
                    hog.settimeout(min(left, CLI_STALL_SECONDS))
                    try:
                        sent += hog.send(chunk)
                    except TimeoutError:
                        break  # the server stopped reading us
                    peak = max(peak, rss_kib(pid))
                peak = max(peak, rss_kib(pid))
                # another client is answered while the hog stays connected
                with socket.socket(family, socket.SOCK_STREAM) as other:
                    other.settimeout(10)
                    other.connect(address)
                    other.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    answer = b""
                    while chunk_in := other.recv(65536):
                        answer += chunk_in
                assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"world!\n")
                peak = max(peak, rss_kib(pid))
            print(f"{family.name}: sent {sent / 1e6:.1f} MB of requests in at most "
                  f"{CLI_PUSH_SECONDS} s; server RSS {before} KiB -> peak {peak} KiB")
            assert peak - before < RSS_GROWTH_KIB, (before, peak, sent)
    finally:
        service.proc.send_signal(signal.SIGTERM)
        try:
            service.proc.wait(timeout=15)
        finally:
            service.kill()
