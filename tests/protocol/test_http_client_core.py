"""The sans-I/O client core: request bytes, response framing, limits, split input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.errors import ProtocolError
from trunkline.protocol.http_client import (
    CHUNKED_LINE,
    NO_BODY,
    ClientHeaders,
    InvalidHeaderError,
    RequestBody,
    ResponseParser,
    asks_close,
    body_framing,
    check_method,
    encode_chunk,
    encode_headers,
    encode_request_head,
    encode_target,
    request_body,
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


# --------------------------------------------------------------------------- request framing


def test_body_kinds_and_their_precedence() -> None:
    assert request_body() is NO_BODY and NO_BODY.replayable
    js = request_body(b"raw", {"a": "1"}, {"k": "ü"}, has_json=True)
    assert js.data == '{"k":"ü"}'.encode() and js.stream is None
    assert js.content_type == b"Content-Type: application/json\r\n"
    assert request_body(has_json=True).data == b"null"  # json=None is JSON null
    form = request_body(b"raw", {"a": ["1", "2"], "b": "x y"})
    assert form.data == b"a=1&a=2&b=x+y"
    assert form.content_type == b"Content-Type: application/x-www-form-urlencoded\r\n"
    assert request_body("tëxt").data == "tëxt".encode()
    assert request_body(memoryview(b"mv")).data == b"mv"
    assert request_body(bytearray(b"ba")).content_type == b""


def test_streams_and_files_are_not_replayable(tmp_path: Any) -> None:
    parts = [b"a", b"b"]
    streamed = request_body(parts)
    assert streamed.stream is parts and not streamed.replayable and streamed.data is None
    path = tmp_path / "body.bin"
    path.write_bytes(b"line\n" * 100_000)  # 500,000 bytes: read in blocks, not lines
    with path.open("rb") as file:
        blocks = list(request_body(file).stream)  # type: ignore[arg-type]
    assert b"".join(blocks) == path.read_bytes()
    assert [len(b) for b in blocks] == [262144, 237856]


def framing(method: str, body: RequestBody,
            headers: list[tuple[str, str]] | None = None) -> tuple[bytes, bool]:
    block, names = encode_headers(headers)
    result = body_framing(method, names, block, body)
    return result.line, result.chunked


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"])
def test_bodyless_methods_without_a_body_send_no_framing(method: str) -> None:
    assert framing(method, NO_BODY) == (b"", False)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "PROPFIND"])
def test_other_methods_without_a_body_send_content_length_zero(method: str) -> None:
    assert framing(method, NO_BODY) == (b"Content-Length: 0\r\n", False)


def test_whole_bytes_get_content_length_whatever_the_method() -> None:
    assert framing("POST", RequestBody(b"hello")) == (b"Content-Length: 5\r\n", False)
    assert framing("GET", RequestBody(b"")) == (b"Content-Length: 0\r\n", False)


def test_a_stream_goes_chunked() -> None:
    assert framing("PUT", RequestBody(stream=[b"x"])) == (CHUNKED_LINE, True)


def test_the_callers_framing_header_wins() -> None:
    stream = RequestBody(stream=[b"x"])
    # a stream with the caller's Content-Length is sent raw, as is, never chunked
    assert framing("PUT", stream, [("Content-Length", "1")]) == (b"", False)
    assert framing("PUT", stream, [("Transfer-Encoding", "gzip, Chunked")]) == (b"", True)
    assert framing("PUT", stream, [("Transfer-Encoding", "gzip")]) == (b"", False)
    assert framing("POST", RequestBody(b"abc"), [("content-length", "3")]) == (b"", False)
    assert framing("POST", NO_BODY, [("Transfer-Encoding", "chunked")]) == (b"", False)


def test_connection_close_is_asked_for_only_by_the_connection_header() -> None:
    block, names = encode_headers([("Connection", "Keep-Alive, Close")])
    assert asks_close(names, block)
    block, names = encode_headers([("X-Note", "close"), ("Connection", "keep-alive")])
    assert not asks_close(names, block)
    assert not asks_close(frozenset(), b"")


def test_given_headers_replace_builtin_ones_of_the_same_name() -> None:
    headers = ClientHeaders([("User-Agent", "trunkline/1"), ("Accept", "*/*")],
                            {"accept": "text/html", "X-Team": "a"})
    assert headers.block == b"User-Agent: trunkline/1\r\naccept: text/html\r\nX-Team: a\r\n"
    assert headers.names == {b"user-agent", b"accept", b"x-team"}


def test_a_requests_headers_replace_the_clients_and_its_body_type_goes_in() -> None:
    headers = ClientHeaders([(b"Accept", b"*/*")], [("X-Team", "a")])
    assert headers.for_request(None) == (headers.block, headers.names)
    json_type = b"Content-Type: application/json\r\n"
    block, names = headers.for_request({"x-team": "b", "X-Id": "7"}, json_type)
    assert block == (b"Accept: */*\r\nContent-Type: application/json\r\nx-team: b\r\n"
                     b"X-Id: 7\r\n")
    assert names == {b"accept", b"x-team", b"x-id"}
    block, _ = headers.for_request([("Content-Type", "text/plain")], json_type)
    assert block == b"Accept: */*\r\nX-Team: a\r\nContent-Type: text/plain\r\n"
    block, _ = headers.for_request(None, json_type)
    assert block == b"Accept: */*\r\nX-Team: a\r\n" + json_type
