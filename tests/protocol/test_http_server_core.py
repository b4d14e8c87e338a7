"""The sans-I/O HTTP/1.1 server core: framing, limits for every split, response framing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.protocol.http_server import HttpServerProtocol
from trunkline.protocol.http_server_events import (
    END_OF_MESSAGE,
    HttpLimits,
    Reject,
    RequestHead,
    Upgraded,
)
from trunkline.protocol.http_server_response import error_response

H = b"Host: a\r\n"

# Every one of these must be refused, never guessed (RFC 9112 6.1, 6.3, 5.1, 2.2, 7.1).
AMBIGUOUS = {
    "cl+te": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked"
             b"\r\n\r\n0\r\n\r\n",
    "te+cl": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3"
             b"\r\n\r\n0\r\n\r\n",
    "cl differing": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n"
                    b"\r\nabcd",
    "cl repeated": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n"
                   b"\r\nabc",
    "cl list": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc",
    "cl plus": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc",
    "cl minus": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -3\r\n\r\nabc",
    "cl hex": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x3\r\n\r\nabc",
    "te not final": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n"
                    b"0\r\n\r\n",
    "te unknown": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc",
    "te gzip,chunked": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
                       b"0\r\n\r\n",
    "te twice": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te in http/1.0": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n",
    "obs-fold te": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n chunked\r\n\r\n"
                   b"0\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    "tab before colon": b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",
    "bare LF everywhere": b"GET / HTTP/1.1\nHost: a\n\n",
    "bare LF one line": b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
    "bare LF at end": b"GET / HTTP/1.1\r\nHost: a\r\n\n",
    "bare LF before the request line": b"\n\r\nGET / HTTP/1.1\r\n" + H + b"\r\n",
    "bare LF in the request line": b"GET / HTTP/1.1\n\r\n" + H + b"\r\n",
    "bare CR": b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n",
    "NUL in value": b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n",
    "CTL in value": b"GET / HTTP/1.1\r\n" + H + b"X: a\x01b\r\n\r\n",
    "DEL in value": b"GET / HTTP/1.1\r\n" + H + b"X: a\x7fb\r\n\r\n",
    "NUL in name": b"GET / HTTP/1.1\r\n" + H + b"X\x00Y: a\r\n\r\n",
    "NUL in target": b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n",
    "chunk size not hex": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                          b"zz\r\nabc\r\n0\r\n\r\n",
    "chunk size overflow": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                           b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "chunk size 0x": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                     b"0x3\r\nabc\r\n0\r\n\r\n",
    "chunk size signed": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                         b"-3\r\nabc\r\n0\r\n\r\n",
    "chunk size space": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                        b"3 \r\nabc\r\n0\r\n\r\n",
    "chunk bare LF": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                     b"3\nabc\n0\n\n",
    "chunk data too long": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                           b"3\r\nabcX\r\n0\r\n\r\n",
    "double space": b"GET  / HTTP/1.1\r\n" + H + b"\r\n",
    "http/0.9": b"GET /\r\n\r\n",
    "no host": b"GET / HTTP/1.1\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "lower-case method": b"get / HTTP/1.1\r\n" + H + b"\r\n",
}
UNSUPPORTED_VERSION = b"GET / HTTP/2.0\r\n" + H + b"\r\n"


def feed(data: bytes, split: str = "whole", limits: HttpLimits = HttpLimits()) -> list[object]:
    core = HttpServerProtocol(limits)
    events: list[object] = []
    if split == "whole":
        events += core.receive_data(data)
    else:
        for i in range(len(data)):
            events += core.receive_data(data[i:i + 1])
    return events


def rejects(events: list[object]) -> list[Reject]:
    return [e for e in events if isinstance(e, Reject)]


def body_of(events: list[object]) -> bytes:
    return b"".join(e for e in events if isinstance(e, bytes))


@pytest.mark.parametrize("split", ["whole", "bytewise"])
@pytest.mark.parametrize("name", sorted(AMBIGUOUS))
def test_framing_ambiguities_are_rejected(name: str, split: str) -> None:
    events = feed(AMBIGUOUS[name], split)
    found = rejects(events)
    assert found and found[0].status == 400, (name, events)
    assert isinstance(events[-1], Reject), "nothing is parsed after a reject"
    assert END_OF_MESSAGE not in events or events.index(END_OF_MESSAGE) < events.index(found[0])


def test_unsupported_version_is_505() -> None:
    assert rejects(feed(UNSUPPORTED_VERSION))[0].status == 505


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_accepted_forms(split: str) -> None:
    ok = (b"GET /a%20b?x=1 HTTP/1.1\r\nHost: a\r\nX: tab\there\r\nY: \xff\r\n\r\n"
          b"\r\n"  # an empty line before a request is ignored (RFC 9112 2.2)
          b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
          b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\nHost: b\r\n\r\n"
          b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"
          b"GET http://example.test/abs?q HTTP/1.1\r\nHost: example.test\r\n\r\n"
          b"PUT /d HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"
          b"GET /ignored HTTP/1.1\r\nHost: a\r\n\r\n")  # after a closing request
    events = feed(ok, split)
    assert not rejects(events)
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [(h.method, h.path, h.query) for h in heads] == [
        ("GET", "/a b", b"x=1"), ("POST", "/c", b""), ("OPTIONS", "*", b""),
        ("GET", "/abs", b"q"), ("PUT", "/d", b"")]
    assert heads[0].headers == [(b"host", b"a"), (b"x", b"tab\there"), (b"y", b"\xff")]
    assert heads[1].chunked and (b"trailer", b"x") not in heads[1].headers
    assert heads[2].headers == [(b"host", b"a")]  # the trailers are not the next head's
    assert heads[4].http_version == "1.0" and not heads[4].keep_alive
    assert body_of(events) == b"abcdehi"
    assert events.count(END_OF_MESSAGE) == 5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    wire = (b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
            b"POST /v HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n"
            b"GET /w HTTP/1.1\r\nHost: a\r\n\r\n")
    core = HttpServerProtocol()
    events: list[object] = []
    pos = 0
    for cut in cuts * 20:
        if pos >= len(wire):
            break
        events += core.receive_data(wire[pos:pos + cut])
        pos += cut
    events += core.receive_data(wire[pos:])
    assert [e.path for e in events if isinstance(e, RequestHead)] == ["/u", "/v", "/w"]
    assert body_of(events) == b"hellowikipedia"
    assert events.count(END_OF_MESSAGE) == 3 and not rejects(events)


SMALL = HttpLimits(max_request_line=64, max_header_bytes=128, max_header_count=4,
                   max_body_bytes=16)


@pytest.mark.parametrize("split", ["whole", "bytewise"])
@pytest.mark.parametrize(("wire", "status"), [
    (b"GET /" + b"a" * 80 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    (b"GET /" + b"a" * 200, 414),  # no CRLF yet: still over the limit
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 200 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 200, 431),  # the value never ends
    (b"GET / HTTP/1.1\r\nHost: a\r\nX:" + b" " * 200 + b"v\r\n\r\n", 431),  # padding counts
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X%d: 1\r\n" % i for i in range(6)) + b"\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n" + b"x" * 17, 413),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n", 413),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n" + b"".join(b"T%d: 1\r\n" % i for i in range(6)) + b"\r\n", 431),
])
def test_limits_hold_for_any_split(wire: bytes, status: int, split: str) -> None:
    found = rejects(feed(wire, split, SMALL))
    assert found and found[0].status == status


def test_limits_at_the_edge_pass() -> None:
    line = b"GET /" + b"a" * (64 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == 64
    events = feed(line + b"\r\nHost: a\r\n\r\n", "whole", SMALL)
    assert not rejects(events)
    fields = b"".join(b"X%d: 1\r\n" % i for i in range(3))
    assert not rejects(feed(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", "whole", SMALL))
    body = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n" + b"x" * 16
    assert body_of(feed(body, "bytewise", SMALL)) == b"x" * 16


def test_nothing_after_a_reject_is_parsed() -> None:
    core = HttpServerProtocol()
    events = core.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBAD\r\n\r\n"
                               b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(events[0], RequestHead) and isinstance(events[-1], Reject)
    assert core.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") == []


def test_upgrade_hands_over_the_rest() -> None:
    core = HttpServerProtocol()
    events = core.receive_data(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                               b"Upgrade: websocket\r\n\r\n\x81\x05hello")
    head = events[0]
    assert isinstance(head, RequestHead) and head.upgrade == b"websocket"
    assert events[1] is END_OF_MESSAGE
    assert events[2] == Upgraded(b"\x81\x05hello")
    assert core.switched and core.receive_data(b"more") == [Upgraded(b"more")]


def test_expect_continue_and_trace_id() -> None:
    events = feed(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                  b"X-Trunkline-Trace-Id: t-42\r\nContent-Length: 1\r\n\r\nx")
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.expect_continue and head.trace_id == "t-42" and head.content_length == 1


# --------------------------------------------------------------------------- responses


def request(wire: bytes) -> tuple[HttpServerProtocol, RequestHead]:
    core = HttpServerProtocol()
    head = core.receive_data(wire)[0]
    assert isinstance(head, RequestHead)
    return core, head


GET11 = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def test_whole_body_gets_content_length_date_server() -> None:
    core, head = request(GET11)
    core.start_response(head, 200, [(b"content-type", b"text/plain")])
    out = core.send_body(b"hi", False)
    assert out.startswith(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n")
    assert b"\r\ncontent-length: 2\r\n" in out and b"\r\ndate: " in out
    assert b"\r\nserver: trunkline\r\n" in out and out.endswith(b"\r\n\r\nhi")
    assert core.keep_alive


def test_streamed_body_is_chunked_in_11_and_close_delimited_in_10() -> None:
    core, head = request(GET11)
    core.start_response(head, 200, [])
    first = core.send_body(b"abc", True)
    assert b"transfer-encoding: chunked\r\n" in first and first.endswith(b"\r\n\r\n3\r\nabc\r\n")
    assert core.send_body(b"", False) == b"0\r\n\r\n"
    core, head = request(b"GET / HTTP/1.0\r\n\r\n")
    core.start_response(head, 200, [])
    first = core.send_body(b"abc", True)
    assert b"chunked" not in first and b"connection: close\r\n" in first
    assert core.send_body(b"", False) == b"" and not core.keep_alive


def test_head_and_no_body_statuses_send_no_body() -> None:
    core, head = request(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    core.start_response(head, 200, [(b"content-length", b"5")])
    out = core.send_body(b"hello", False)
    assert out.endswith(b"\r\n\r\n") and b"content-length: 5" in out
    for status in (204, 304):
        core, head = request(GET11)
        core.start_response(head, status, [])
        out = core.send_body(b"", False)
        assert b"content-length" not in out and b"transfer-encoding" not in out


def test_http10_keep_alive_is_answered_in_kind() -> None:
    core, head = request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    core.start_response(head, 200, [])
    assert b"connection: keep-alive\r\n" in core.send_body(b"x", False) and core.keep_alive


def test_bad_responses_are_refused() -> None:
    core, head = request(GET11)
    with pytest.raises(ValueError, match="header value"):
        core.start_response(head, 200, [(b"x", b"a\r\nInjected: 1")])
    with pytest.raises(ValueError, match="header name"):
        core.start_response(head, 200, [(b"bad name", b"1")])
    core.start_response(head, 200, [(b"content-length", b"3")])
    with pytest.raises(ValueError, match="longer"):
        core.send_body(b"abcd", False)
    core.start_response(head, 200, [(b"content-length", b"3")])
    with pytest.raises(ValueError, match="shorter"):
        core.send_body(b"ab", False)


def test_response_fields_are_remembered_by_content_in_any_shape() -> None:
    """Header lists are checked once and remembered by their content: the same fields as
    lists or a generator frame the same, and a bad field is refused each time."""
    wanted = None
    for fields in ([(b"x-a", b"1"), (b"content-length", b"2")],
                   [[b"x-a", b"1"], [b"content-length", b"2"]],
                   ((n, v) for n, v in [(b"x-a", b"1"), (b"content-length", b"2")])):
        core, head = request(GET11)
        core.start_response(head, 200, fields)
        out = core.send_body(b"hi", False)
        head_only = out.split(b"date: ")[0]
        assert wanted is None or head_only == wanted
        wanted = head_only
    assert wanted == b"HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 2\r\n"
    for _ in range(2):
        core, head = request(GET11)
        with pytest.raises(ValueError, match="header value"):
            core.start_response(head, 200, [(b"x-a", b"1\r\nx-b: 2")])
        with pytest.raises(ValueError, match="pairs"):
            core.start_response(head, 200, [1])  # type: ignore[list-item]
    core, head = request(b"GET / HTTP/1.0\r\n\r\n")  # no chunks for HTTP/1.0
    core.start_response(head, 200, [(b"transfer-encoding", b"chunked")])
    first = core.send_body(b"abc", True)
    assert b"transfer-encoding" not in first and first.endswith(b"\r\n\r\nabc")
    core, head = request(GET11)
    with pytest.raises(ValueError, match="both"):
        core.start_response(head, 200, [(b"transfer-encoding", b"chunked"),
                                        (b"content-length", b"3")])


def test_error_response_closes() -> None:
    out = error_response(431, "too many fields")
    assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"connection: close\r\n" in out


def test_one_read_of_many_pipelined_requests_is_parsed_a_few_heads_at_a_time() -> None:
    """A read of thousands of pipelined requests must not become thousands of parsed
    requests at once: at most ``max_heads`` per call, the rest held as bytes, in order."""
    wire = b"".join(b"POST /%d HTTP/1.1\r\n" % i + H + b"Content-Length: 1\r\n\r\nx"
                    for i in range(1000))
    core = HttpServerProtocol(max_heads=8)
    events = core.receive_data(wire)
    paths = [e.path for e in events if isinstance(e, RequestHead)]
    assert paths == [f"/{i}" for i in range(8)]
    assert events[-1] is END_OF_MESSAGE and wire.endswith(b"".join(
        b"POST /%d HTTP/1.1\r\n" % i + H + b"Content-Length: 1\r\n\r\nx" for i in range(8, 1000)))
    assert core.held == len(wire) - wire.index(b"POST /8 ")
    while core.held:
        more = core.receive_data(b"")
        heads = [e.path for e in more if isinstance(e, RequestHead)]
        assert 1 <= len(heads) <= 8
        paths += heads
    assert paths == [f"/{i}" for i in range(1000)]
    # bytes arriving while some are held come after them
    tail = core.receive_data(wire + b"GET /late HTTP/1.1\r\n" + H + b"\r\n")
    tail += core.receive_data(b"GET /later HTTP/1.1\r\n" + H + b"\r\n")
    while core.held:
        tail += core.receive_data(b"")
    paths = [e.path for e in tail if isinstance(e, RequestHead)]
    assert paths == [f"/{i}" for i in range(1000)] + ["/late", "/later"]


GOOD_HOSTS = [b"example.com", b"example.com:8080", b"127.0.0.1", b"127.0.0.1:80", b"[::1]",
              b"[::1]:8080", b"[2001:db8::1]", b"[::ffff:127.0.0.1]", b"[v1.name]", b"",
              b"a-b_c~d.e", b"%41bc", b"h:", b"x!$&'()*+,;=y", b"example.com "]
BAD_HOSTS = [b"bad host", b"a b", b"host/path", b"user@host", b"[::1", b"::1", b"[:::]",
             b"a:b:c", b"[::1]x", b"a%4", b"a%zz", b"x:80a", b"a\"b", b"<x>", b"a{b}",
             b"\xffhost", b"a\\b", b"a#b", b"a?b"]


@pytest.mark.parametrize("split", ["whole", "bytewise"])
@pytest.mark.parametrize("host", BAD_HOSTS)
def test_an_invalid_host_is_400(host: bytes, split: str) -> None:
    """RFC 9112 3.2: a Host that is not uri-host[:port] (RFC 3986) is answered 400, on the
    plain path (a GET with nothing else to weigh) and on the slow one (with a body)."""
    for wire in (b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n",
                 b"POST / HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 1\r\n\r\nx"):
        found = rejects(feed(wire, split))
        assert found and found[0].status == 400 and "Host" in found[0].reason, (host, wire)


@pytest.mark.parametrize("host", GOOD_HOSTS)
def test_a_valid_host_is_accepted(host: bytes) -> None:
    for wire in (b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n",
                 b"POST / HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 1\r\n\r\nx"):
        events = feed(wire, "whole")
        assert not rejects(events) and events[-1] is END_OF_MESSAGE, (host, events)


def test_a_bad_host_after_good_ones_on_one_connection_is_400() -> None:
    core = HttpServerProtocol()
    assert not rejects(core.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 2))
    assert rejects(core.receive_data(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"))[0].status == 400


def test_a_malformed_head_over_a_limit_gets_the_same_status_however_it_is_split() -> None:
    """Found by tests/test_fuzz.py: a head with a bad line and too many fields got 400 in
    one read (llhttp's error came first) but 431 in pieces (the field count ran first)."""
    wire = (b"POST / HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n"
            + b"".join(b"X%d: 1\r\n" % i for i in range(6)) + b"\r\n")
    whole = rejects(feed(wire, "whole", SMALL))
    pieces = rejects(feed(wire, "bytewise", SMALL))
    assert [r.status for r in whole] == [r.status for r in pieces] == [431]
