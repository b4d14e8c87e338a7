"""trunkline.Client when things go wrong: stale pooled connections, timeouts, refused and
unresolvable addresses, untrusted TLS certificates, malformed responses."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

import trunkline
from tests.client.test_http_client_peers import HELLO, aiohttp_peer, raw_server, silent_server
from trunkline.client import (
    CertificateVerifyError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ServerDisconnectedError,
    Timeout,
)
from trunkline.errors import ConnectError, HandshakeError, ProtocolError, TrunklineTimeoutError

# --------------------------------------------------------------------------- stale connections


def _close_second_request(conn: int, count: int, head: bytes) -> bytes | None:
    """Answer the first request on each connection, then close on the next one unanswered:
    what a client sees when a server drops an idle keep-alive connection just as the client
    reuses it."""
    return HELLO if count == 1 else None


async def test_idempotent_request_is_retried_on_a_stale_connection() -> None:
    async with raw_server(_close_second_request) as srv, trunkline.Client() as client:
        url = f"http://127.0.0.1:{srv.port}/"
        assert (await client.get(url)).content == b"hello"
        second = await client.get(url)  # the stale connection fails, a new one succeeds
        assert second.content == b"hello"
        assert srv.connections == 2
        assert srv.requests == 3  # first, the unanswered retry victim, the retry


async def test_post_is_not_retried() -> None:
    async with raw_server(_close_second_request) as srv, trunkline.Client() as client:
        url = f"http://127.0.0.1:{srv.port}/"
        assert (await client.post(url, content=b"x")).content == b"hello"
        with pytest.raises(ServerDisconnectedError) as info:
            await client.post(url, content=b"y")
        assert info.value.before_response
        assert isinstance(info.value, OSError)
        assert srv.connections == 1 and srv.requests == 2


async def test_retries_zero_disables_retrying() -> None:
    async with raw_server(_close_second_request) as srv, trunkline.Client(retries=0) as client:
        url = f"http://127.0.0.1:{srv.port}/"
        await client.get(url)
        with pytest.raises(ServerDisconnectedError):
            await client.get(url)


async def test_server_closing_an_idle_connection_is_noticed() -> None:
    """Connection: close from the server: the next request (even a POST) goes on a new one."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    async with raw_server(lambda c, n, h: answer) as srv, trunkline.Client() as client:
        url = f"http://127.0.0.1:{srv.port}/"
        for _ in range(3):
            assert (await client.post(url, content=b"x")).content == b"ok"
        assert srv.connections == 3


@contextlib.asynccontextmanager
async def closing_server(answer: bytes) -> AsyncIterator[tuple[int, list[int]]]:
    """Answers each request with ``answer`` and closes; yields (port, [connections])."""
    seen = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen[0] += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()


async def test_response_cut_short_is_not_retried() -> None:
    async with closing_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc") as (
            port, seen), trunkline.Client() as client:
        with pytest.raises(ServerDisconnectedError) as info:
            await client.get(f"http://127.0.0.1:{port}/")
        assert not info.value.before_response
        assert seen == [1]


async def test_close_delimited_body() -> None:
    async with closing_server(b"HTTP/1.1 200 OK\r\n\r\nno length: ends at close") as (
            port, seen), trunkline.Client() as client:
        for _ in range(2):
            response = await client.get(f"http://127.0.0.1:{port}/")
            assert response.content == b"no length: ends at close"
        assert seen == [2]


async def test_http_1_0_response_is_not_reused() -> None:
    answer = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold"
    async with raw_server(lambda c, n, h: answer) as srv, trunkline.Client() as client:
        for _ in range(2):
            response = await client.get(f"http://127.0.0.1:{srv.port}/")
            assert response.text == "old" and response.http_version == "1.0"
        assert srv.connections == 2


async def test_garbage_response_is_a_protocol_error() -> None:
    async with raw_server(lambda c, n, h: b"SMTP ready\r\n\r\n") as srv, \
            trunkline.Client() as client:
        with pytest.raises(ProtocolError):
            await client.get(f"http://127.0.0.1:{srv.port}/")


async def test_interim_100_continue_is_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + HELLO
    async with raw_server(lambda c, n, h: answer) as srv, trunkline.Client() as client:
        for _ in range(2):
            response = await client.get(f"http://127.0.0.1:{srv.port}/")
            assert response.status_code == 200 and response.content == b"hello"
        assert srv.connections == 1


# --------------------------------------------------------------------------- timeouts


@contextlib.contextmanager
def full_backlog_listener() -> Iterator[int]:
    """A TCP listener that never accepts, its accept queue full: new SYNs are dropped, so a
    connect hangs until the client gives up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            fillers.append(s)
            if s.connect_ex(("127.0.0.1", port)) not in (0, 115):  # 115: EINPROGRESS
                break
        yield port
    finally:
        for s in fillers:
            s.close()
        listener.close()


async def test_connect_timeout_is_a_timeout_error() -> None:
    with full_backlog_listener() as port:
        async with trunkline.Client(timeout=Timeout(connect=0.3)) as client:
            with pytest.raises(ConnectTimeoutError) as info:
                await client.get(f"http://127.0.0.1:{port}/")
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, TrunklineTimeoutError)
    assert "connect timeout" in str(info.value)


async def test_read_timeout_is_a_timeout_error() -> None:
    async with silent_server() as (port, connected), trunkline.Client() as client:
        with pytest.raises(ReadTimeoutError) as info:
            await client.get(f"http://127.0.0.1:{port}/", timeout=Timeout(read=0.2))
        assert connected.is_set()
        assert isinstance(info.value, TimeoutError)
        assert "read timeout" in str(info.value)


async def test_total_timeout() -> None:
    async with silent_server() as (port, _), trunkline.Client(timeout=0.2) as client:
        with pytest.raises(TimeoutError, match="total timeout"):
            await client.get(f"http://127.0.0.1:{port}/", timeout=Timeout(read=None, total=0.2))


async def test_read_timeout_mid_stream() -> None:
    partial = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome"
    async with raw_server(lambda c, n, h: partial) as srv, trunkline.Client() as client, \
            client.stream("GET", f"http://127.0.0.1:{srv.port}/",
                          timeout=Timeout(read=0.2)) as response:
        with pytest.raises(ReadTimeoutError, match="middle of the response"):
            await response.aread()


# --------------------------------------------------------------------------- connect errors


async def test_refused_connection() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    async with trunkline.Client() as client:
        with pytest.raises(ConnectError, match="could not connect"):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_missing_unix_socket(short_tmp: Path) -> None:
    async with trunkline.Client() as client:
        with pytest.raises(ConnectError):
            await client.get("http://x/", transport=f"unix://{short_tmp}/none.sock")


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", "api.test").configure_cert(ctx)
    return ctx


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def test_tls_verified_with_the_right_ca(server_ssl: ssl.SSLContext, ca_file: str) -> None:
    async with aiohttp_peer(ssl_context=server_ssl) as p, \
            trunkline.Client(verify=ca_file) as client:
        assert p.url.startswith("https://")
        response = await client.get(p.url + "/secure")
        assert response.json()["path"] == "/secure"
        again = await client.get(p.url.replace("127.0.0.1", "localhost") + "/byname")
        assert again.status_code == 200


async def test_tls_untrusted_certificate_fails_clearly(server_ssl: ssl.SSLContext) -> None:
    async with aiohttp_peer(ssl_context=server_ssl) as p, trunkline.Client() as client:
        with pytest.raises(CertificateVerifyError) as info:
            await client.get(p.url + "/")
    message = str(info.value)
    assert "not trusted" in message and "verify=" in message and "--cacert" in message
    assert isinstance(info.value, HandshakeError)


async def test_tls_verification_can_be_turned_off(server_ssl: ssl.SSLContext) -> None:
    async with aiohttp_peer(ssl_context=server_ssl) as p, \
            trunkline.Client(verify=False) as client:
        assert (await client.get(p.url + "/")).status_code == 200


async def test_tls_name_comes_from_the_url_with_a_transport_override(
        server_ssl: ssl.SSLContext, ca_file: str) -> None:
    async with aiohttp_peer(ssl_context=server_ssl) as p, \
            trunkline.Client(verify=ca_file) as client:
        port = p.url.rsplit(":", 1)[1]
        response = await client.get("https://api.test/x", transport=f"tcp://127.0.0.1:{port}")
        assert response.json()["host"] == "api.test"
        with pytest.raises(CertificateVerifyError):  # the cert does not name other.test
            await client.get("https://other.test/x", transport=f"tcp://127.0.0.1:{port}")


async def test_tls_over_a_unix_socket(server_ssl: ssl.SSLContext, ca_file: str,
                                      short_tmp: Path) -> None:
    path = str(short_tmp / "tls.sock")
    async with aiohttp_peer(uds=path, ssl_context=server_ssl), \
            trunkline.Client(verify=ca_file) as client:
        response = await client.get("https://localhost/over-uds", transport=f"unix://{path}")
        assert response.json()["path"] == "/over-uds"


async def test_trace_says_who_closed() -> None:
    from trunkline.trace import Step, Tracer

    closing = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    tracer = Tracer()
    async with raw_server(lambda c, n, h: closing if c == 1 else HELLO) as srv:
        client = trunkline.Client(tracer=tracer)
        await client.get(f"http://127.0.0.1:{srv.port}/")  # closed after the response
        await client.get(f"http://127.0.0.1:{srv.port}/")  # kept, then closed by aclose
        await client.aclose()
    by_conn = {e.conn: e.detail["by"] for e in tracer.events if e.step is Step.CLOSE}
    assert by_conn == {1: "server", 2: "client"}
