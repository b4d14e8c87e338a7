"""h1spec-like cases (uNetworking/h1spec's table, plus Host syntax): one request per raw
connection, the first status answered must fall in the expected range. The Host cases are
RFC 9112 section 3.2: exactly one Host in HTTP/1.1, and its value uri-host[:port]."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.support.http_server_support import running, statuses
from trunkline.apps import hello_app

CASES: list[tuple[str, bytes, tuple[int, int]]] = [
    ("without HTTP version", b"GET / \r\n\r\n", (400, 599)),
    ("valid GET", b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", (200, 299)),
    ("edge cases", b"GET / HTTP/1.1\r\nhoSt:\texample.com\r\nempty:\r\n\r\n", (200, 299)),
    ("invalid header characters",
     b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Invalid[]: test\r\n\r\n", (400, 499)),
    ("missing Host", b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", (400, 499)),
    ("multiple Host",
     b"GET / HTTP/1.1\r\nHost: example.com\r\nHost: example.org\r\n\r\n", (400, 499)),
    ("overflowing negative Content-Length", b"GET / HTTP/1.1\r\nHost: example.com\r\n"
     b"Content-Length: -123456789123456789123456789\r\n\r\n", (400, 499)),
    ("negative Content-Length",
     b"GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: -1234\r\n\r\n", (400, 499)),
    ("non-numeric Content-Length",
     b"GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: abc\r\n\r\n", (400, 499)),
    ("empty header value",
     b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Empty-Header: \r\n\r\n", (200, 299)),
    ("control character in a value",
     b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Bad-Control-Char: test\x07\r\n\r\n",
     (400, 499)),
    ("invalid HTTP version", b"GET / HTTP/9.9\r\nHost: example.com\r\n\r\n", (400, 599)),
    ("invalid prefix", b"Extra lineGET / HTTP/1.1\r\nHost: example.com\r\n\r\n", (400, 599)),
    ("invalid line ending",
     b"GET / HTTP/1.1\r\nHost: example.com\r\n\rSome-Header: Test\r\n\r\n", (400, 499)),
    ("POST with body",
     b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello", (200, 299)),
    ("Transfer-Encoding with Content-Length", b"GET / HTTP/1.1\r\nHost: example.com\r\n"
     b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", (400, 499)),
    # Host syntax (the case h1spec-style runs found us accepting)
    ("Host with a space", b"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n", (400, 400)),
    ("Host with a path", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", (400, 400)),
    ("Host with userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", (400, 400)),
    ("Host unbracketed IPv6", b"GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", (400, 400)),
    ("Host bad port", b"GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", (400, 400)),
    ("Host bad, with a body",
     b"POST / HTTP/1.1\r\nHost: a b\r\nContent-Length: 2\r\n\r\nhi", (400, 400)),
    ("Host IPv6 with port", b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", (200, 299)),
    ("Host IPv4 with port", b"GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n", (200, 299)),
    ("Host empty", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", (200, 299)),
    ("HTTP/1.0 without Host", b"GET / HTTP/1.0\r\n\r\n", (200, 299)),
]


def first_answer(port: int, request: bytes) -> bytes:
    """What the server answers on a fresh connection, up to its first complete head."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


@pytest.mark.parametrize(("name", "request_bytes", "expected"), CASES,
                         ids=[c[0] for c in CASES])
async def test_h1spec_case(name: str, request_bytes: bytes, expected: tuple[int, int]) -> None:
    async with running(hello_app, access_log=False) as server:
        port = int(server.urls[0].rsplit(":", 1)[1])
        answer = await asyncio.to_thread(first_answer, port, request_bytes)
    found = statuses(answer)
    assert found, (name, answer)
    low, high = expected
    assert low <= found[0] <= high, (name, answer)


async def test_a_bad_host_is_answered_400_and_closed() -> None:
    async with running(hello_app, access_log=False) as server:
        port = int(server.urls[0].rsplit(":", 1)[1])

        def exchange() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: ok\r\n\r\n"
                             b"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n")
                received = b""
                while chunk := sock.recv(65536):  # until the server closes
                    received += chunk
                return received

        answer = await asyncio.to_thread(exchange)
    assert statuses(answer) == [200, 400]
    assert b"invalid Host header 'bad host'" in answer
