"""Sans-I/O WebSocket (RFC 6455, RFC 7692): bytes in, events out, bytes to send.

Framing, masking, control frames, the close handshake and permessage-deflate come from the
sans-I/O core of ``websockets`` (``ServerProtocol``/``ClientProtocol``); this module adds
what that core leaves to its I/O layers, so every transport of ours gets the same rules.

Rules:
- ``WebSocketCore.receive_data(bytes)`` returns events in wire order: ``str`` (a whole text
  message) and ``bytes`` (a whole binary message) *are* the events; ``Ping``, ``Pong``,
  ``CloseReceived`` (the peer's close frame; our answer is already queued),
  ``HandshakeDone`` / ``HandshakeFailed`` (client side only). ``data_to_send()`` returns
  the bytes to write; ``b""`` (``SEND_EOF``) means half-close (or close, where the
  transport cannot half-close).
- Fragments are joined here. Text is checked as UTF-8 fragment by fragment (fail fast);
  a message over ``max_size`` bytes or ``max_fragments`` frames fails the connection with
  1009, invalid UTF-8 with 1007, any framing error (reserved bits or opcodes, a client frame
  without a mask, a server frame with one, a fragmented or oversized control frame, a
  continuation out of place, a bad close code) with 1002. A close frame in the middle of a
  fragmented message closes normally (the unfinished message is dropped, as Autobahn's
  case 7.1.5 expects). After a failure the core ignores
  whatever the peer sends; ``close_expected()`` says the transport should close soon.
- Whole single-frame messages take a fast path (``websocket_fast``) both ways; anything
  else goes through websockets' parser, so the rules are the parser's either way.
- Handshakes: ``websocket_handshake`` (``client_core``, ``ServerHandshake``).
- Nothing here does I/O or keeps time: keepalive pings and close timeouts belong to the
  I/O layer (``trunkline.aio.websocket``).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any, Literal

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, PayloadTooBig
from websockets.exceptions import ProtocolError as WsProtocolError
from websockets.frames import BINARY, CLOSE, CONT, PING, PONG, TEXT, Frame
from websockets.http11 import Request, Response
from websockets.protocol import CLOSED, CLOSING, OPEN, SEND_EOF, State
from websockets.server import ServerProtocol

from ..errors import OK_CLOSE_CODES, WebSocketClosed, WebSocketHandshakeError
from .websocket_fast import (
    HEADS,
    KEYS,
    MASKED_HEADS,
    apply_mask,
    build,
    frame_bytes,
    mask_key,
    parse_simple,
)

MiB = 1024 * 1024

#: Close codes that mean "all went well" (normal closure, going away).
#: 1005: no code in the close frame; 1006: no close frame at all (the connection dropped).
NO_STATUS = 1005
ABNORMAL = 1006

HeaderPairs = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class WebSocketOptions:
    """How one WebSocket connection behaves, on either side. Sizes are bytes, times seconds."""

    max_size: int | None = 1 * MiB  # largest incoming message (after decompression); 1009
    max_fragments: int | None = 4096  # most frames in one incoming message; 1009
    compression: bool = True  # offer (client) / accept (server) permessage-deflate
    ping_interval: float | None = None  # send a keepalive ping this often; None: never
    ping_timeout: float | None = 20.0  # no pong this long after a keepalive ping: close 1011
    close_timeout: float = 10.0  # how long the close handshake may take before we cut
    max_queue: int = 1 * MiB  # received bytes held for the app before reading pauses
    write_limit: int = 64 * 1024  # write buffer above which send() waits for the peer


# --------------------------------------------------------------------------- events


class Ping:
    """The peer pinged us (the pong is already queued)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Ping({self.data!r})"


class Pong:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Pong({self.data!r})"


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer's close frame. When the peer started the close, our echo is already queued."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class HandshakeDone:
    """Client: the server switched to WebSocket."""

    status: int
    headers: HeaderPairs
    subprotocol: str | None
    extensions: list[str]


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    """Client: the server answered something else than a valid 101."""

    error: WebSocketHandshakeError


Event = str | bytes | Ping | Pong | CloseReceived | HandshakeDone | HandshakeFailed

_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


class TooManyFragments(PayloadTooBig):
    """A message in more frames than allowed: websockets' parser answers it with 1009."""

    def __init__(self, limit: int) -> None:
        Exception.__init__(self, f"message in more than {limit} fragments")

    def set_current_size(self, current_size: int | None) -> None:
        pass

    def __str__(self) -> str:
        return str(self.args[0])


class _Assembler:
    """Mixed into websockets' protocols: data frames become whole messages *inside* the
    parser, so a bad fragment fails the connection before the next frame is looked at (the
    first violation in wire order decides the close code, however the bytes were split).
    ``events`` then holds ``str``/``bytes`` messages, control ``Frame``s and handshake
    events. Raising ``UnicodeDecodeError`` or ``PayloadTooBig`` here makes the parser fail
    with 1007 or 1009."""

    max_fragments: int | None = None
    #: bytes handed to the parser so far, and how many of them it had consumed when it last
    #: finished a frame (or the opening handshake): equal means it is between frames. Its
    #: buffer alone cannot tell: mid-frame, it may have consumed a header and hold nothing.
    fed = 0
    boundary = 0
    _fragments = 0
    _text = False
    _parts: list[str] | bytearray | None = None
    _decoder: codecs.IncrementalDecoder | None = None

    def recv_frame(self, frame: Frame) -> None:
        op = frame.opcode
        proto: Any = self
        self.boundary = self.fed - len(proto.reader.buffer)
        if op is TEXT or op is BINARY:
            if proto.current_size is not None:
                raise WsProtocolError("expected a continuation frame")
            if frame.fin:  # the common case: a whole message in one frame
                data = frame.data
                if op is TEXT:
                    proto.events.append(bytes(data).decode())
                else:
                    proto.events.append(data if type(data) is bytes else bytes(data))
                return
            proto.current_size = len(frame.data)
            self._fragments = 1
            self._text = op is TEXT
            if self._text:
                self._decoder = _Utf8Decoder()
                self._parts = []
            else:
                self._parts = bytearray()
        elif op is CONT:
            if proto.current_size is None:
                raise WsProtocolError("unexpected continuation frame")
            self._fragments += 1
            if self.max_fragments is not None and self._fragments > self.max_fragments:
                raise TooManyFragments(self.max_fragments)
            proto.current_size = None if frame.fin else proto.current_size + len(frame.data)
        else:
            if op is CLOSE and proto.current_size is not None:
                # A close in the middle of a fragmented message ends the connection normally
                # (Autobahn 7.1.5: a clean close with the peer's code); the unfinished
                # message is dropped. websockets' parser would fail it with 1002.
                proto.current_size = None
                self._parts = self._decoder = None
            proto.super_recv_frame(frame)
            return
        parts = self._parts
        if self._text:
            assert self._decoder is not None and isinstance(parts, list)
            piece = self._decoder.decode(frame.data, frame.fin)  # raises: 1007, fail fast
            if piece:
                parts.append(piece)
            if frame.fin:
                proto.events.append("".join(parts))
        else:
            assert isinstance(parts, bytearray)
            parts += frame.data
            if frame.fin:
                proto.events.append(bytes(parts))
        if frame.fin:
            self._parts = self._decoder = None


class AssemblingServerProtocol(_Assembler, ServerProtocol):
    """websockets' server protocol that hands on whole messages (see ``_Assembler``)."""

    def super_recv_frame(self, frame: Frame) -> None:
        ServerProtocol.recv_frame(self, frame)


class AssemblingClientProtocol(_Assembler, ClientProtocol):
    """websockets' client protocol that hands on whole messages (see ``_Assembler``)."""

    def super_recv_frame(self, frame: Frame) -> None:
        ClientProtocol.recv_frame(self, frame)

    def process_response(self, response: Response) -> None:
        ClientProtocol.process_response(self, response)
        self.boundary = self.fed - len(self.reader.buffer)  # frames start after the 101


# --------------------------------------------------------------------------- the core


class WebSocketCore:
    """One WebSocket connection's protocol state, on either side."""

    __slots__ = ("_proto", "_failed_by_us", "handshake_error", "side", "_masked",
                 "_send_masked", "simple", "receiving", "quick", "_small_ok", "_quick_out")

    def __init__(self, proto: AssemblingServerProtocol | AssemblingClientProtocol,
                 options: WebSocketOptions, side: Literal["client", "server"]) -> None:
        self._proto = proto
        proto.max_fragments = options.max_fragments
        self.side = side
        self._masked = side == "server"  # frames from clients are masked
        self._send_masked = side == "client"
        self._failed_by_us = False
        self.handshake_error: WebSocketHandshakeError | None = None
        #: the last ``receive_data`` took whole simple frames only: its events are all
        #: messages, and nothing changed that needs writing (the I/O layer skips its flush)
        self.simple = False
        #: whether more messages may come: no close frame received, no failure, no EOF
        #: (an attribute, not a property: read before every wait for a message; kept by
        #: ``_update_receiving`` wherever one of those can change)
        self.receiving = True
        #: open and between frames (no parser state, nothing buffered): the next read may
        #: take the fast paths (``message``, ``parse_simple``). Kept with ``receiving``.
        self.quick = False
        #: open, no extension: ``frame`` may build the frame itself (kept with ``quick``;
        #: we never send fragments, so no continuation is ever expected from us)
        self._quick_out = False
        max_size = proto.max_message_size
        self._small_ok = max_size is None or max_size >= 125  # every frame ``message`` takes
        self._update_receiving()

    def _update_receiving(self) -> None:
        """After anything that may change the parser's state: ``receiving`` and ``quick``."""
        proto = self._proto
        reader = proto.reader
        self.receiving = receiving = (proto.close_rcvd is None and proto.parser_exc is None
                                      and not self._failed_by_us and not reader.eof)
        # proto._state: the attribute behind websockets' ``state`` property
        # (tests/protocol/test_websockets_internals.py checks it is there)
        is_open = proto._state is OPEN
        self.quick = (receiving and is_open and proto.current_size is None
                      and not reader.buffer and proto.fed == proto.boundary)
        self._quick_out = is_open and not proto.extensions and \
            not proto.expect_continuation_frame

    # ---------------------------------------------------------------- state

    @property
    def state(self) -> State:
        return self._proto.state

    @property
    def is_open(self) -> bool:
        return self._proto._state is OPEN  # the attribute behind websockets' state property

    @property
    def subprotocol(self) -> str | None:
        return self._proto.subprotocol

    @property
    def extensions(self) -> list[str]:
        return [ext.name for ext in self._proto.extensions]

    @property
    def close_code(self) -> int | None:
        """The code of the peer's close frame (1005 if it had none, 1006 if none came);
        None while the connection is not closed."""
        if self._proto.state is not CLOSED:
            return None
        rcvd = self._proto.close_rcvd
        return ABNORMAL if rcvd is None else rcvd.code

    @property
    def close_reason(self) -> str | None:
        if self._proto.state is not CLOSED:
            return None
        rcvd = self._proto.close_rcvd
        return "" if rcvd is None else rcvd.reason

    @property
    def sent_close(self) -> tuple[int, str] | None:
        sent = self._proto.close_sent
        return None if sent is None else (sent.code, sent.reason)

    @property
    def closed_by(self) -> str | None:
        """Which side started the close handshake (or failed the connection): "client",
        "server", or None (nobody did: the connection dropped)."""
        proto = self._proto
        peer = "server" if self.side == "client" else "client"
        if proto.close_rcvd_then_sent is True:
            return peer
        if proto.close_rcvd_then_sent is False or proto.close_sent is not None:
            return self.side
        if proto.close_rcvd is not None:
            return peer
        return None

    def close_expected(self) -> bool:
        """True once the transport should close soon (close sent, or the connection failed):
        the I/O layer arms its close timer."""
        return self._proto.close_expected()

    def closed_error(self, detail: str = "") -> WebSocketClosed:
        """The error for a closed (or closing) connection: the peer's close frame if one
        came; else the code we failed the connection with; else 1006."""
        proto = self._proto
        rcvd, sent = proto.close_rcvd, proto.close_sent
        if rcvd is not None:
            code, reason = rcvd.code, rcvd.reason
        elif sent is not None and (self._failed_by_us or (
                proto.parser_exc is not None and not isinstance(proto.parser_exc, EOFError))):
            code, reason = sent.code, sent.reason
        else:
            code, reason = ABNORMAL, ""
        return WebSocketClosed(code, reason, self.closed_by, detail)

    # ---------------------------------------------------------------- receiving

    def message(self, data: bytes | bytearray | memoryview) -> str | bytes | None:
        """The message of ``data`` when ``data`` is exactly one whole, final, unextended
        text or binary frame with a payload under 126 bytes, read between frames (``quick``):
        a chat line, an echo's every read. Else None, and nothing changed: then
        ``receive_data``, whose rules (and close codes) apply to everything else."""
        if not self.quick or not self._small_ok:
            return None
        size = len(data)
        if self._masked:  # from a client: the 2-byte head (mask bit set), a 4-byte key
            if not 6 <= size <= 131 or data[1] != size + 122:  # 0x80 | (size - 6)
                return None
            first = data[0]
            if first != 0x82 and first != 0x81:
                return None
            if type(data) is not bytes:  # a read into a buffer: slices of bytes are bytes
                data = bytes(data)
            payload = apply_mask(data[6:], data[2:6])
        else:  # from a server: the 2-byte head, no mask
            if not 2 <= size <= 127 or data[1] != size - 2:
                return None
            first = data[0]
            if first != 0x82 and first != 0x81:
                return None
            payload = data[2:] if type(data) is bytes else bytes(data[2:])
        if first == 0x82:
            return payload
        try:
            return payload.decode()
        except UnicodeDecodeError:
            return None  # the parser fails the connection with its own words

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        proto = self._proto
        self.simple = False
        if proto.reader.eof:
            return []
        if self.quick:
            # Between frames: whole simple frames need no parser (see websocket_fast).
            fast: list[Any] = []
            used = parse_simple(data, self._masked, proto.max_message_size, fast)
            if used == len(data):
                self.simple = True
                return fast
            if used:
                data = memoryview(data)[used:]
        else:
            fast = []
        proto.fed += len(data)
        proto.receive_data(data)  # type: ignore[arg-type]  # the reader takes any buffer
        self._update_receiving()
        events: list[Any] = proto.events_received()
        if fast:
            events[:0] = fast
        if not events:
            return events
        drop = False
        for i, event in enumerate(events):
            kind = type(event)
            if kind is str or kind is bytes:
                continue
            if kind is Frame:
                op = event.opcode
                if op is PING:
                    events[i] = Ping(bytes(event.data))
                elif op is PONG:
                    events[i] = Pong(bytes(event.data))
                else:  # CLOSE: the parser stored it
                    rcvd = proto.close_rcvd
                    assert rcvd is not None
                    events[i] = CloseReceived(rcvd.code, rcvd.reason)
            else:
                events[i] = self._handshake_event(event)
                drop = drop or events[i] is None
        if self.side == "client" and self.handshake_error is None and \
                proto.handshake_exc is not None:
            events.append(self._failed(proto.handshake_exc))
        return [e for e in events if e is not None] if drop else events

    def receive_eof(self) -> list[Event]:
        """The peer closed its sending side (or the connection)."""
        proto = self._proto
        proto.receive_eof()
        self._update_receiving()
        events: list[Event] = []
        for event in proto.events_received():
            if isinstance(event, Response):
                handshake = self._handshake_event(event)
                if handshake is not None:
                    events.append(handshake)
        if self.side == "client" and self.handshake_error is None and \
                proto.handshake_exc is not None:
            events.append(self._failed(proto.handshake_exc))
        return events

    def _handshake_event(self, event: Request | Response) -> Event | None:
        if not isinstance(event, Response):
            return None
        proto = self._proto
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1", "replace"))
                   for k, v in event.headers.raw_items()]
        if proto.handshake_exc is None:
            return HandshakeDone(event.status_code, headers, proto.subprotocol, self.extensions)
        return self._failed(proto.handshake_exc, event, headers)

    def _failed(self, exc: Exception, response: Response | None = None,
                headers: HeaderPairs | None = None) -> HandshakeFailed:
        if isinstance(exc, InvalidStatus):
            response = exc.response
        if response is not None:
            status = response.status_code
            if isinstance(exc, InvalidStatus):
                message = (f"the server answered {status} {response.reason_phrase} "
                           "instead of switching to WebSocket")
            else:
                message = f"the server's WebSocket handshake was invalid: {exc}"
            error = WebSocketHandshakeError(message, status, headers or [
                (k.lower().encode("latin-1"), v.encode("latin-1", "replace"))
                for k, v in response.headers.raw_items()], bytes(response.body or b""))
        else:
            cause = exc.__cause__
            why = "the connection closed" if isinstance(cause, EOFError) else f"{exc}"
            error = WebSocketHandshakeError(
                f"no valid WebSocket handshake response: {why} (is this a WebSocket "
                "server, and is the scheme right: ws vs wss?)")
        self.handshake_error = error
        return HandshakeFailed(error)

    # ---------------------------------------------------------------- sending

    def send_text(self, text: str) -> None:
        proto = self._proto
        if proto.extensions or proto.state is not OPEN or proto.expect_continuation_frame:
            proto.send_text(text.encode())
        else:
            proto.writes += build(0x81, text.encode(), self._send_masked)

    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        proto = self._proto
        if proto.extensions or proto.state is not OPEN or proto.expect_continuation_frame:
            proto.send_binary(data)
        else:
            proto.writes += build(0x82, data, self._send_masked)

    def frame(self, message: str | bytes | bytearray | memoryview) -> bytes | None:
        """``message`` (``str`` or ``bytes``) as one ready frame to write, when the fast
        path applies (open, no extension, nothing else waiting to be written, not over
        ``SMALL_FRAME``); else None: use ``send_text``/``send_binary``."""
        if not self._quick_out or self._proto.writes:
            return None
        if type(message) is bytes:
            first, payload = 0x82, message
        elif type(message) is str:
            first, payload = 0x81, message.encode()
        else:
            return None
        size = len(payload)
        if size < 126:  # frame_bytes(), inlined for the commonest size: a call less
            if self._send_masked:
                key = KEYS.pop() if KEYS else mask_key()
                return MASKED_HEADS[first][size] + key + apply_mask(payload, key)
            return HEADS[first][size] + payload
        return frame_bytes(first, payload, self._send_masked)

    def send_ping(self, data: bytes) -> None:
        self._proto.send_ping(data)

    def send_pong(self, data: bytes) -> None:
        self._proto.send_pong(data)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake (only while OPEN). Codes the RFC keeps off the wire
        (1005, 1006, 1015) or outside 1000-4999 raise ``ValueError``."""
        if not _sendable_code(code):
            raise ValueError(f"close code {code} cannot be sent; use 1000-1003, 1007-1014 "
                             "or 3000-4999")
        if len(reason.encode()) > 123:
            raise ValueError("the close reason is over 123 bytes of UTF-8")
        self._proto.send_close(code, reason)
        self._update_receiving()  # CLOSING: no fast path any more

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection: a close frame if none was sent, then stop reading."""
        self._failed_by_us = True
        self._proto.fail(code, reason)
        self.receiving = self.quick = self._quick_out = False

    def data_to_send(self) -> list[bytes]:
        return self._proto.data_to_send()


def _sendable_code(code: int) -> bool:
    return (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999) and \
        not isinstance(code, bool)


__all__ = [
    "ABNORMAL", "CLOSED", "CLOSING", "NO_STATUS", "OK_CLOSE_CODES", "OPEN", "SEND_EOF",
    "AssemblingClientProtocol", "AssemblingServerProtocol", "CloseReceived", "Event",
    "HandshakeDone", "HandshakeFailed", "Ping", "Pong",
    "WebSocketClosed", "WebSocketCore", "WebSocketHandshakeError", "WebSocketOptions",
]
