"""The sans-I/O WebSocket core: handshakes, framing rules, limits, close codes; fuzzed with
hypothesis against a small reference model of RFC 6455."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.websocket_support import (
    BINARY,
    CLOSE,
    CONT,
    KEY,
    PING,
    PONG,
    TEXT,
    accept_key,
    close_code_of,
    close_payload,
    frame,
    parse_frames,
)
from trunkline.protocol.websocket import (
    CloseReceived,
    HandshakeDone,
    HandshakeFailed,
    Ping,
    Pong,
    WebSocketCore,
    WebSocketOptions,
)
from trunkline.protocol.websocket_handshake import ServerHandshake, client_core, http_response

OPTIONS = WebSocketOptions(compression=False)


def request_headers(extra: list[tuple[bytes, bytes]] | None = None) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"localhost"), (b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
            (b"sec-websocket-key", KEY.encode()), (b"sec-websocket-version", b"13"),
            *(extra or [])]


def server(options: WebSocketOptions = OPTIONS, subprotocol: str | None = None
           ) -> WebSocketCore:
    handshake = ServerHandshake("GET", b"/", "1.1", request_headers(), options)
    assert handshake.ok, handshake.error
    _, core = handshake.accept(subprotocol)
    return core


def sent_frames(core: WebSocketCore) -> tuple[list[tuple[bool, int, bytes]], bool]:
    """Frames the core wants to send, and whether it asked to half-close."""
    out = core.data_to_send()
    frames, rest = parse_frames(b"".join(out))
    assert rest == b""
    return frames, b"" in out


def sent_close(core: WebSocketCore) -> int | None:
    frames, _ = sent_frames(core)
    codes = [close_code_of(p) for _, op, p in frames if op == CLOSE]
    return codes[0] if codes else None


# --------------------------------------------------------------------------- handshakes


def test_client_and_server_handshake_round_trip() -> None:
    client = client_core("example.test:8080", "/chat?room=1", OPTIONS, subprotocols=["v2", "chat"],
                         headers=[("X-Token", "t")], user_agent="trunkline/test")
    request = b"".join(client.data_to_send())
    head, _, rest = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"GET /chat?room=1 HTTP/1.1" and rest == b""
    assert lines[1] == b"Host: example.test:8080"  # the URL's host, first
    headers = [(n.strip().lower(), v.strip()) for n, v in (line.split(b":", 1)
                                                         for line in lines[1:])]
    assert (b"x-token", b"t") in headers and (b"user-agent", b"trunkline/test") in headers
    shake = ServerHandshake("GET", b"/chat?room=1", "1.1", headers, OPTIONS, b"trunkline")
    assert shake.ok and shake.subprotocols == ["v2", "chat"]
    response, server_core = shake.accept("chat", [(b"x-extra", b"1")])
    assert response.startswith(b"HTTP/1.1 101 ")
    assert b"\r\nServer: trunkline\r\n" in response and b"\r\nx-extra: 1\r\n" in response
    events = client.receive_data(response + frame(TEXT, b"early", mask=False))
    done = events[0]
    assert isinstance(done, HandshakeDone) and done.subprotocol == "chat" and done.status == 101
    assert events[1:] == ["early"]  # a frame right behind the 101 is not lost
    assert client.subprotocol == server_core.subprotocol == "chat"


@pytest.mark.parametrize(("change", "status"), [
    ({"method": "POST"}, 405),
    ({"version": "1.0"}, 505),
    ({"drop": b"sec-websocket-key"}, 400),
    ({"drop": b"connection"}, 426),
    ({"set": (b"sec-websocket-version", b"8")}, 400),
    ({"set": (b"sec-websocket-key", b"short")}, 400),
])
def test_invalid_upgrade_requests_are_rejected(change: dict[str, Any], status: int) -> None:
    headers = [h for h in request_headers() if h[0] != change.get("drop")]
    if "set" in change:
        name, value = change["set"]
        headers = [(n, value if n == name else v) for n, v in headers]
    shake = ServerHandshake(change.get("method", "GET"), b"/", change.get("version", "1.1"),
                            headers, OPTIONS)
    assert not shake.ok and shake.error
    assert shake.rejection().startswith(f"HTTP/1.1 {status} ".encode())


def test_client_sees_a_refusal_with_its_status_headers_and_body() -> None:
    client = client_core("h", "/", OPTIONS)
    client.data_to_send()
    events = client.receive_data(http_response(404, [(b"x-why", b"nope")], b"no such room"))
    (failed,) = events
    assert isinstance(failed, HandshakeFailed)
    assert failed.error.status == 404 and failed.error.body == b"no such room"
    assert (b"x-why", b"nope") in failed.error.headers
    assert "404" in str(failed.error)


def test_client_rejects_a_wrong_accept_key() -> None:
    client = client_core("h", "/", OPTIONS)
    client.data_to_send()
    bad = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Accept: " + accept_key("AAAAAAAAAAAAAAAAAAAAAA==").encode()
           + b"\r\n\r\n")
    (failed,) = client.receive_data(bad)
    assert isinstance(failed, HandshakeFailed) and "Sec-WebSocket-Accept" in str(failed.error)


def test_client_handshake_cut_short_fails() -> None:
    client = client_core("h", "/", OPTIONS)
    client.data_to_send()
    assert client.receive_data(b"HTTP/1.1 101 Swi") == []
    (failed,) = client.receive_eof()
    assert isinstance(failed, HandshakeFailed) and "closed" in str(failed.error)


def test_permessage_deflate_is_negotiated_and_compresses() -> None:
    options = WebSocketOptions()
    client = client_core("h", "/", options)
    request = b"".join(client.data_to_send())
    assert b"permessage-deflate" in request
    headers = [(n.strip().lower(), v.strip()) for n, v in (
        line.split(b":", 1) for line in request.split(b"\r\n\r\n")[0].split(b"\r\n")[1:])]
    response, srv = ServerHandshake("GET", b"/", "1.1", headers, options).accept()
    assert isinstance(client.receive_data(response)[0], HandshakeDone)
    assert client.extensions == srv.extensions == ["permessage-deflate"]
    text = "compress me " * 1000
    client.send_text(text)
    wire = b"".join(client.data_to_send())
    assert len(wire) < len(text) // 10 and wire[0] & 0x40  # RSV1: compressed
    assert srv.receive_data(wire) == [text]
    plain = ServerHandshake("GET", b"/", "1.1", headers, WebSocketOptions(compression=False))
    _, core = plain.accept()
    assert core.extensions == []


# --------------------------------------------------------------------------- framing


def test_fragments_are_joined_with_pings_between_them() -> None:
    core = server()
    snowman = "☃".encode()  # split in the middle of the character
    wire = (frame(TEXT, b"a" + snowman[:1], fin=False) + frame(PING, b"p1")
            + frame(CONT, snowman[1:], fin=False) + frame(PONG, b"x")
            + frame(CONT, b"z", fin=True) + frame(BINARY, b"\x00", fin=False)
            + frame(CONT, b"\x01"))
    events = core.receive_data(wire)
    assert [type(e) for e in events] == [Ping, Pong, str, bytes]
    assert events[2] == "a☃z" and events[3] == b"\x00\x01"
    frames, _ = sent_frames(core)
    assert frames == [(True, PONG, b"p1")]


def test_split_input_gives_the_same_events() -> None:
    wire = frame(TEXT, "héllo".encode(), fin=False) + frame(CONT, b" world") + \
        frame(BINARY, bytes(range(200)))
    whole = server().receive_data(wire)
    core = server()
    pieces: list[Any] = []
    for i in range(len(wire)):
        pieces += core.receive_data(wire[i:i + 1])
    assert pieces == whole == ["héllo world", bytes(range(200))]


def open_pair(options: WebSocketOptions = OPTIONS) -> tuple[WebSocketCore, WebSocketCore]:
    """A client core and a server core that completed the handshake with each other."""
    client = client_core("h", "/", options)
    request = b"".join(client.data_to_send())
    headers = [(n.strip().lower(), v.strip()) for n, v in (
        line.split(b":", 1) for line in request.split(b"\r\n\r\n")[0].split(b"\r\n")[1:])]
    response, srv = ServerHandshake("GET", b"/", "1.1", headers, options).accept()
    assert isinstance(client.receive_data(response)[0], HandshakeDone)
    return client, srv


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70_000])
def test_every_length_encoding_both_ways_whole_and_split(size: int) -> None:
    client, srv = open_pair()
    text = "é" * (size // 2) + "a" * (size % 2)
    binary = bytes(range(256)) * (size // 256) + bytes(size % 256)
    client.send_text(text)
    client.send_binary(binary)
    wire = b"".join(client.data_to_send())
    assert srv.receive_data(wire) == [text, binary]  # one read: the fast path
    client.send_binary(binary)
    wire = b"".join(client.data_to_send())
    got: list[Any] = []
    for cut in (1, 3, 9):  # a read that ends inside the header: the parser's path
        got += srv.receive_data(wire[:cut])
        wire = wire[cut:]
    assert got + srv.receive_data(wire) == [binary]
    srv.send_text(text)
    srv.send_binary(binary)
    out = b"".join(srv.data_to_send())
    assert not out[1] & 0x80  # servers never mask
    assert client.receive_data(out) == [text, binary]


@pytest.mark.parametrize("cut", [2, 4, 6, 10])
def test_a_read_ending_right_after_a_header_is_not_taken_for_a_new_frame(cut: int) -> None:
    """The parser consumes a frame's header before its payload arrives, so its buffer is empty
    mid-frame; the next read, whose bytes look like a whole frame, is that frame's payload."""
    client, srv = open_pair()
    lookalike = frame(BINARY, b"xyz", mask=False)  # 82 03 'xyz': a frame of its own, or not
    size = 200 if cut in (2, 4) else 70_000  # 16- or 64-bit length
    payload = (lookalike * size)[:size]
    wire = frame(BINARY, payload, mask=False)
    head = 2 + (2 if size < 65536 else 8)
    first = min(cut, head)  # inside the header, or right after it
    assert client.receive_data(wire[:first]) == []
    assert client.receive_data(wire[first:]) == [payload]
    # the server side too, where the mask key comes right after the header
    key = b"\x82\x03ab"  # a masking key that starts like a frame
    masked = frame(BINARY, payload, mask=True, mask_key=key)
    assert srv.receive_data(masked[:head]) == []
    assert srv.receive_data(masked[head:]) == [payload]


def test_simple_and_other_frames_mixed_in_one_read_keep_their_order() -> None:
    core = server()
    wire = (frame(TEXT, b"a") + frame(PING, b"p") + frame(BINARY, b"b")
            + frame(TEXT, b"c", fin=False) + frame(CONT, b"d") + frame(TEXT, b"e"))
    events = core.receive_data(wire)
    assert [e if isinstance(e, str | bytes) else type(e) for e in events] == [
        "a", Ping, b"b", "cd", "e"]


# ids by position: masked frames carry random keys, and pytest-xdist needs every worker to
# collect the same test ids
VIOLATIONS = [
    (frame(TEXT, b"\xff\xfe"), 1007),
    (frame(TEXT, b"ok", fin=False) + frame(CONT, b"\xc3\x28", fin=False), 1007),
    (frame(TEXT, b"hi", mask=False), 1002),  # a client frame must be masked
    (frame(TEXT, b"hi", rsv=4), 1002),  # RSV1 without an extension
    (frame(TEXT, b"hi", rsv=1), 1002),
    (frame(3, b""), 1002),  # reserved data opcode
    (frame(0xB, b""), 1002),  # reserved control opcode
    (frame(PING, b"x", fin=False), 1002),  # control frames cannot be fragmented
    (frame(PING, b"x" * 126), 1002),  # control frames carry at most 125 bytes
    (frame(CONT, b"x"), 1002),  # continuation with no message
    (frame(TEXT, b"x", fin=False) + frame(BINARY, b"y"), 1002),  # new message mid-message
    (frame(CLOSE, b"\x03"), 1002),  # one-byte close payload
    (frame(CLOSE, close_payload(999)), 1002),
    (frame(CLOSE, close_payload(1005)), 1002),  # never on the wire
    (frame(CLOSE, close_payload(5000)), 1002),
    (frame(CLOSE, close_payload(1000, b"\xff")), 1007),
    (frame(BINARY, b"x" * 2000), 1009),
    (frame(BINARY, b"x" * 900, fin=False) + frame(CONT, b"x" * 200), 1009),
]


@pytest.mark.parametrize(("wire", "code"), VIOLATIONS,
                         ids=[f"{n}-{code}" for n, (_, code) in enumerate(VIOLATIONS)])
def test_violations_fail_with_the_right_code(wire: bytes, code: int) -> None:
    core = server(WebSocketOptions(compression=False, max_size=1024))
    core.receive_data(wire)
    frames, eof = sent_frames(core)
    assert [close_code_of(p) for _, op, p in frames if op == CLOSE] == [code]
    assert eof and core.close_expected() and not core.receiving
    # Whatever the peer sends next is ignored.
    assert core.receive_data(frame(TEXT, b"after")) == []


def test_invalid_utf8_fails_before_the_last_fragment() -> None:
    core = server()
    core.receive_data(frame(TEXT, b"\xc3", fin=False))
    assert sent_close(core) is None  # an incomplete character may still complete
    core.receive_data(frame(CONT, b"\x28", fin=False))  # it did not: fail now, not at FIN
    assert sent_close(core) == 1007


def test_too_many_fragments() -> None:
    core = server(WebSocketOptions(compression=False, max_fragments=3))
    assert core.receive_data(frame(TEXT, b"a", fin=False) + frame(CONT, b"b", fin=False)
                             + frame(CONT, b"c")) == ["abc"]
    core.receive_data(frame(TEXT, b"a", fin=False) + frame(CONT, b"", fin=False)
                      + frame(CONT, b"", fin=False) + frame(CONT, b""))
    assert sent_close(core) == 1009


def test_server_frames_must_not_be_masked() -> None:
    client = client_core("h", "/", OPTIONS)
    client.data_to_send()
    response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade"
                b"\r\nSec-WebSocket-Accept: " + _client_accept(client) + b"\r\n\r\n")
    client.receive_data(response)
    client.receive_data(frame(TEXT, b"hi", mask=True))
    frames, _ = sent_frames(client)
    assert [close_code_of(p) for _, op, p in frames if op == CLOSE] == [1002]
    assert all(True for _ in frames)


def _client_accept(client: WebSocketCore) -> bytes:
    key = client._proto.key  # type: ignore[attr-defined]
    return accept_key(key).encode()


def test_close_started_by_the_client() -> None:
    core = server()
    events = core.receive_data(frame(CLOSE, close_payload(1000, b"done")))
    assert events == [CloseReceived(1000, "done")]
    frames, eof = sent_frames(core)
    assert frames == [(True, CLOSE, close_payload(1000, b"done"))] and eof
    core.receive_eof()
    assert core.close_code == 1000 and core.close_reason == "done"
    assert core.closed_by == "client" and core.closed_error().ok


def test_close_started_by_the_server() -> None:
    core = server()
    core.send_text("last")
    core.send_close(4000, "app says bye")
    frames, eof = sent_frames(core)
    assert frames[-1] == (True, CLOSE, close_payload(4000, b"app says bye")) and not eof
    assert core.close_expected()
    # The client may still send messages until it sees our close; they arrive.
    assert core.receive_data(frame(TEXT, b"late") + frame(CLOSE, close_payload(4000))) == [
        "late", CloseReceived(4000, "")]
    core.receive_eof()
    assert core.close_code == 4000 and core.closed_by == "server"
    assert not core.closed_error().ok


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2999, 5000])
def test_unsendable_close_codes_are_refused(code: int) -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        server().send_close(code)


def test_an_empty_close_frame_means_1005() -> None:
    core = server()
    assert core.receive_data(frame(CLOSE, b"")) == [CloseReceived(1005, "")]
    frames, _ = sent_frames(core)
    assert frames == [(True, CLOSE, b"")]  # echoed as it came


def test_eof_without_close_is_1006() -> None:
    core = server()
    core.receive_eof()
    assert core.close_code == 1006 and core.closed_by is None
    assert not core.closed_error().ok


# --------------------------------------------------------------------------- fuzzing

MAX_SIZE = 600
MAX_FRAGMENTS = 5


@st.composite
def frames_strategy(draw: Any) -> tuple[int, bool, int, bool, bytes]:
    opcode = draw(st.sampled_from([TEXT, BINARY, CONT, CONT, PING, PONG, CLOSE, 3, 0xB]))
    fin = draw(st.booleans() if opcode in (TEXT, BINARY, CONT) else
               st.sampled_from([True, True, True, False]))
    rsv = draw(st.sampled_from([0] * 12 + [1, 2, 4]))
    mask = draw(st.sampled_from([True] * 15 + [False]))
    if opcode == CLOSE:
        payload = draw(st.one_of(
            st.just(b""), st.binary(max_size=1),
            st.builds(close_payload, st.sampled_from([1000, 1001, 1002, 1003, 1005, 1007,
                                                      1011, 3000, 4999, 999, 1016, 5000]),
                      st.sampled_from([b"", b"bye", "é".encode(), b"\xff"]))))
    elif opcode in (TEXT, CONT):
        payload = draw(st.one_of(st.text(max_size=40).map(str.encode), st.binary(max_size=8),
                                 st.binary(min_size=100, max_size=260)))
    else:
        payload = draw(st.binary(max_size=140))
    return opcode, fin, rsv, mask, payload


def reference(frames: list[tuple[int, bool, int, bool, bytes]]) -> tuple[list[Any], int | None]:
    """What RFC 6455 (with websockets' order of checks) says the server must do with
    ``frames``: the messages delivered and the close code it sends (None: none)."""
    messages: list[Any] = []
    current: int | None = None  # opcode of the message in progress
    parts: list[bytes] = []
    count = 0
    for opcode, fin, rsv, mask, payload in frames:
        if opcode not in (CONT, TEXT, BINARY, CLOSE, PING, PONG) or not mask:
            return messages, 1002
        limit = MAX_SIZE - sum(map(len, parts)) if current is not None else MAX_SIZE
        if len(payload) > limit:
            return messages, 1009
        if rsv or (opcode >= CLOSE and (not fin or len(payload) > 125)):
            return messages, 1002
        if opcode == CLOSE:
            if len(payload) == 1:
                return messages, 1002
            if len(payload) >= 2:
                code = struct.unpack("!H", payload[:2])[0]
                try:
                    payload[2:].decode()
                except UnicodeDecodeError:
                    return messages, 1007
                valid = code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                 1013, 1014) or 3000 <= code <= 4999
                if not valid:
                    return messages, 1002
                return messages, code  # mid-message too: it is dropped (Autobahn 7.1.5)
            return messages, 1005  # echoed empty
        if opcode in (PING, PONG):
            continue
        if opcode == CONT and current is None or opcode != CONT and current is not None:
            return messages, 1002
        if current is None:
            current, parts, count = opcode, [], 0
        parts.append(payload)
        count += 1
        if count > MAX_FRAGMENTS:
            return messages, 1009
        if current == TEXT:
            data = b"".join(parts)
            try:
                data.decode()
            except UnicodeDecodeError as exc:
                if fin or exc.reason != "unexpected end of data":
                    return messages, 1007
        if fin:
            data = b"".join(parts)
            messages.append(data.decode() if current == TEXT else data)
            current = None
    return messages, None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames_strategy(), max_size=12), st.data())
def test_random_frame_sequences_match_the_reference(frames: list[Any], data: Any) -> None:
    wire = b"".join(frame(op, payload, fin=fin, rsv=rsv, mask=mask)
                    for op, fin, rsv, mask, payload in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    core = server(WebSocketOptions(compression=False, max_size=MAX_SIZE,
                                   max_fragments=MAX_FRAGMENTS))
    events: list[Any] = []
    last = 0
    for cut in [*cuts, len(wire)]:
        events += core.receive_data(wire[last:cut])
        last = cut
    messages, code = reference(frames)
    assert [e for e in events if isinstance(e, str | bytes)] == messages
    sent = [close_code_of(p) if p else 1005 for _, op, p in sent_frames(core)[0] if op == CLOSE]
    assert sent == ([] if code is None else [code])
    assert all(isinstance(e, str | bytes | Ping | Pong | CloseReceived) for e in events)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["client", "server"]))
def test_random_bytes_never_crash_either_side(junk: bytes, side: str) -> None:
    if side == "server":
        core = server(WebSocketOptions(compression=True, max_size=256))
    else:
        core = client_core("h", "/", WebSocketOptions(max_size=256))
        core.data_to_send()
        core.receive_data(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                          + _client_accept(core) + b"\r\n\r\n")
    events = core.receive_data(junk)
    core.receive_eof()
    assert all(isinstance(e, str | bytes | Ping | Pong | CloseReceived) for e in events)
    sent = [close_code_of(p) for _, op, p in parse_frames(b"".join(core.data_to_send()))[0]
            if op == CLOSE and p]
    received = [e.code for e in events if isinstance(e, CloseReceived)]
    for code in sent:  # our own failures use the protocol's codes; else we echo the peer
        assert code in (1002, 1007, 1009) or code in received
    assert core.close_code is not None  # after EOF the connection is always closed


def receive(core: WebSocketCore, data: bytes) -> list[Any]:
    """What the I/O layer does with a read: the one-message fast path first."""
    message = core.message(data)
    return core.receive_data(data) if message is None else [message]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames_strategy(), min_size=1, max_size=6))
def test_one_frame_per_read_through_the_fast_path_matches_the_reference(frames: list[Any]
                                                                        ) -> None:
    core = server(WebSocketOptions(compression=False, max_size=MAX_SIZE,
                                   max_fragments=MAX_FRAGMENTS))
    events: list[Any] = []
    for op, fin, rsv, mask, payload in frames:
        events += receive(core, frame(op, payload, fin=fin, rsv=rsv, mask=mask))
    messages, code = reference(frames)
    assert [e for e in events if isinstance(e, str | bytes)] == messages
    sent = [close_code_of(p) if p else 1005 for _, op, p in sent_frames(core)[0] if op == CLOSE]
    assert sent == ([] if code is None else [code])


def test_the_one_message_path_takes_only_small_whole_data_frames() -> None:
    client, srv = open_pair()
    for size in (0, 1, 125):
        payload = bytes(range(size))
        assert srv.message(frame(BINARY, payload)) == payload
        assert srv.message(memoryview(frame(TEXT, b"a" * size))) == "a" * size
        assert client.message(frame(BINARY, payload, mask=False)) == payload
        assert client.message(memoryview(frame(TEXT, b"a" * size, mask=False))) == "a" * size
    # not for it: a bigger payload, other opcodes, fragments, reserved bits, the wrong
    # masking, a frame and a bit more, invalid UTF-8
    for wire in (frame(BINARY, bytes(126)), frame(PING, b"p"), frame(BINARY, b"x", fin=False),
                 frame(CONT, b"x"), frame(BINARY, b"x", rsv=4), frame(BINARY, b"x", mask=False),
                 frame(BINARY, b"x") + b"\x82", frame(TEXT, b"\xff")):
        assert srv.message(wire) is None
    assert client.message(frame(BINARY, b"x", mask=True)) is None
    assert client.message(frame(BINARY, bytes(126), mask=False)) is None
    assert srv.receive_data(frame(TEXT, b"\xff")) == []  # the parser's way: 1007
    assert sent_close(srv) == 1007
    assert srv.message(frame(BINARY, b"x")) is None  # failed: nothing more


def test_the_one_message_path_waits_for_the_parser_to_be_between_frames() -> None:
    client, srv = open_pair()
    wire = frame(BINARY, b"0123456789")
    assert srv.receive_data(wire[:4]) == []  # the parser holds a frame's start
    assert srv.message(frame(BINARY, b"x")) is None
    assert srv.receive_data(wire[4:]) == [b"0123456789"]
    assert srv.message(frame(BINARY, b"x")) == b"x"  # between frames again
    srv.send_close(1000)
    assert srv.message(frame(BINARY, b"x")) is None  # closing: the parser's rules
    tiny = server(WebSocketOptions(compression=False, max_size=10))
    assert tiny.message(frame(BINARY, b"x")) is None  # a size limit under 125: the parser
    assert tiny.receive_data(frame(BINARY, b"x")) == [b"x"]
