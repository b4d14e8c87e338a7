"""The sans-I/O client core: request bytes, response framing, limits, split input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.errors import ProtocolError
from trunkline.protocol.http_client import (
    InvalidHeaderError,
    ResponseParser,
    check_method,
    encode_chunk,
    encode_headers,
    encode_request_head,
    encode_target,
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_response_head(self, status: int, reason: bytes, version: str,
                         headers: list[tuple[bytes, bytes]]) -> None:
        self.events.append(("head", status, reason, version, list(headers)))

    def on_response_body(self, data: bytes) -> None:
        if self.events and self.events[-1][0] == "body":
            self.events[-1] = ("body", self.events[-1][1] + data)
        else:
            self.events.append(("body", data))

    def on_response_complete(self, keep_alive: bool) -> None:
        self.events.append(("done", keep_alive))


def parse(data: bytes, *, head: bool = False, eof: bool = False) -> list[tuple[Any, ...]]:
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expect(head=head)
    parser.feed(data)
    if eof:
        parser.feed_eof()
    return recorder.events


def test_content_length_body() -> None:
    events = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello")
    assert events == [("head", 200, b"OK", "1.1", [(b"Content-Length", b"5"), (b"X-A", b"b")]),
                      ("body", b"hello"), ("done", True)]


def test_chunked_body() -> None:
    events = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert events[1:] == [("body", b"abcde"), ("done", True)]


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    events = parse(b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status)
    assert [e[0] for e in events] == ["head", "done"]


def test_head_response_ends_at_its_blank_line_and_the_parser_goes_on() -> None:
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expect(head=True)
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    parser.expect()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert [e[0] for e in recorder.events] == ["head", "done", "head", "body", "done"]


def test_close_delimited_body_ends_at_eof() -> None:
    events = parse(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", eof=True)
    assert events[1:] == [("body", b"until the end"), ("done", False)]


def test_eof_inside_a_framed_body_is_an_error() -> None:
    with pytest.raises(ProtocolError, match="before the response body was complete"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", eof=True)
    with pytest.raises(ProtocolError, match="full response head"):
        parse(b"HTTP/1.1 200 OK\r\nX-", eof=True)


def test_http_1_0_and_connection_close_are_not_kept_alive() -> None:
    assert parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")[-1] == ("done", False)
    assert parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                 )[-1] == ("done", False)
    assert parse(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
                 )[-1] == ("done", True)


def test_interim_responses_are_skipped() -> None:
    events = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                   b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    assert events == [("head", 201, b"Created", "1.1", [(b"Content-Length", b"0")]),
                      ("done", True)]


def test_bytes_after_the_response_are_refused() -> None:
    with pytest.raises(ProtocolError):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")
    recorder = Recorder()
    parser = ResponseParser(recorder)
    with pytest.raises(ProtocolError, match="no request was outstanding"):
        parser.feed(b"HTTP/1.1 200 OK\r\n\r\n")


def test_limits() -> None:
    many = b"".join(b"X-%d: y\r\n" % i for i in range(200))
    with pytest.raises(ProtocolError, match="more than 128 headers"):
        parse(b"HTTP/1.1 200 OK\r\n" + many + b"\r\n")
    recorder = Recorder()
    parser = ResponseParser(recorder, max_head=1000)
    parser.expect()
    with pytest.raises(ProtocolError, match="over 1000 bytes"):
        for i in range(10):
            parser.feed(b"HTTP/1.1 200 OK\r\nX: " if i == 0 else b"a" * 500)
    with pytest.raises(ProtocolError, match="invalid HTTP response"):
        parse(b"SSH-2.0-OpenSSH\r\n\r\n")


RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nA: b\r\n\r\nhello world",
    b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnope\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
]


@given(st.sampled_from(RESPONSES), st.lists(st.integers(1, 40), max_size=20))
def test_any_split_gives_the_same_events(response: bytes, cuts: list[int]) -> None:
    whole = parse(response)
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expect()
    rest = response
    for cut in cuts:
        if not rest:
            break
        parser.feed(rest[:cut])
        rest = rest[cut:]
    if rest:
        parser.feed(rest)
    assert recorder.events == whole


def test_request_head_encoding() -> None:
    block, names = encode_headers([("X-A", "1"), (b"X-B", b" two ")])
    assert block == b"X-A: 1\r\nX-B: two\r\n" and names == {b"x-a", b"x-b"}
    head = encode_request_head(check_method("get"), encode_target("/a b?q=é"),
                               b"Host: h\r\n", block, b"Content-Length: 0\r\n")
    assert head == (b"GET /a%20b?q=%C3%A9 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-B: two\r\n"
                    b"Content-Length: 0\r\n\r\n")
    assert encode_target("/already%20encoded?x=1") == b"/already%20encoded?x=1"
    assert encode_chunk(b"abc") == b"3\r\nabc\r\n" and encode_chunk(b"") == b""


@pytest.mark.parametrize("headers", [
    {"X-A": "1\r\nX-Injected: 2"}, {"Bad Name": "1"}, {"X-A": "nul\0"}, {"": "empty"},
])
def test_header_injection_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidHeaderError):
        encode_headers(headers)


def test_method_must_be_a_token() -> None:
    assert check_method("PURGE") == b"PURGE"
    with pytest.raises(InvalidHeaderError):
        check_method("GET /evil HTTP/1.1\r\n")
