"""The websockets internals our WebSocket core reaches into, checked by name.

``protocol/websocket.py`` runs on websockets' sans-I/O protocol but overrides ``recv_frame``
(whole messages assembled inside the parser), reads the parser's ``reader.buffer`` and the
protocol's bookkeeping attributes, and writes frames into ``writes`` itself. None of that is
websockets' public API, so pyproject pins websockets to the range these tests ran on. When a
new websockets changes one of them, this test says which, before the behaviour tests fail in
less obvious ways: widen the pin only after it (and the WebSocket suites) pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import websockets
import websockets.frames
from websockets.client import ClientProtocol
from websockets.exceptions import PayloadTooBig
from websockets.frames import Frame
from websockets.protocol import OPEN, Protocol
from websockets.server import ServerProtocol
from websockets.streams import StreamReader
from websockets.uri import parse_uri

USED_BY = "trunkline/protocol/websocket.py"


def _server() -> ServerProtocol:
    return ServerProtocol()


def _client() -> ClientProtocol:
    return ClientProtocol(parse_uri("ws://localhost/"))


def _params(func: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(func).parameters)


# (the internal, how we use it, a check that is true while it is as we use it)
INTERNALS: list[tuple[str, str, Callable[[], bool]]] = [
    ("Protocol.recv_frame(self, frame)", "overridden by _Assembler, called for every frame",
     lambda: _params(Protocol.recv_frame) == ["self", "frame"]),
    ("Protocol.parse calls self.recv_frame", "our override must be what the parser calls",
     lambda: "self.recv_frame(" in inspect.getsource(Protocol.parse)),
    ("ClientProtocol.process_response(self, response)",
     "overridden by AssemblingClientProtocol to mark where frames start",
     lambda: _params(ClientProtocol.process_response) == ["self", "response"]),
    ("Protocol.reader is a StreamReader", "its buffer tells frame boundaries",
     lambda: isinstance(_server().reader, StreamReader)),
    ("StreamReader.buffer (bytearray)", "bytes fed but not yet parsed",
     lambda: isinstance(StreamReader().buffer, bytearray)),
    ("StreamReader.eof (bool)", "the peer's EOF, for WebSocketCore.open",
     lambda: StreamReader().eof is False),
    ("Protocol.current_size (None between messages)", "set while assembling a message",
     lambda: _server().current_size is None),
    ("Protocol.events (list)", "assembled messages are appended to it",
     lambda: _server().events == []),
    ("Protocol.writes (list)", "our fast path appends ready frames to it",
     lambda: _server().writes == []),
    ("Protocol.events_received()", "drains events",
     lambda: _server().events_received() == []),
    ("Protocol._state (what the state property returns)",
     "read directly on every message (a property call less)",
     lambda: (lambda proto: proto._state is proto.state)(ServerProtocol(state=OPEN))
     and isinstance(Protocol.__dict__["state"], property)),
    ("Protocol.parser_exc", "read to tell a failed parser",
     lambda: _server().parser_exc is None),
    ("Protocol.close_rcvd_then_sent", "read to tell who closed first",
     lambda: _server().close_rcvd_then_sent is None),
    ("Protocol.expect_continuation_frame (bool)", "our fast path must not interleave",
     lambda: _server().expect_continuation_frame is False),
    ("Protocol.max_message_size", "the limit our fast frame parser applies",
     lambda: ServerProtocol(max_size=1234).max_message_size == 1234),
    ("PayloadTooBig.set_current_size(self, current_size)",
     "overridden by TooManyFragments (the parser calls it on 1009)",
     lambda: _params(PayloadTooBig.set_current_size) == ["self", "current_size"]),
    ("websockets.frames.apply_mask", "websocket_fast.py masks with it",
     lambda: callable(getattr(websockets.frames, "apply_mask", None))),
]


@pytest.mark.parametrize(("name", "use", "check"), INTERNALS, ids=[i[0] for i in INTERNALS])
def test_websockets_internal_is_as_we_use_it(name: str, use: str,
                                             check: Callable[[], bool]) -> None:
    try:
        ok = check()
    except Exception as exc:  # an attribute gone is as much a change as a wrong value
        ok, why = False, f"{type(exc).__name__}: {exc}"
    else:
        why = "it differs"
    if not ok:
        pytest.fail(f"websockets {websockets.__version__} changed the internal {name} "
                    f"({why}); {USED_BY} relies on it: {use}. Adapt the core, then widen the "
                    "websockets pin in pyproject.toml", pytrace=False)


def test_the_assembler_still_sees_each_frame() -> None:
    """End to end through websockets' parser: our recv_frame gets the frame and
    reader.buffer is what is left of the bytes fed."""
    from trunkline.protocol.websocket import AssemblingServerProtocol

    seen: list[tuple[bytes, int]] = []

    class Watching(AssemblingServerProtocol):
        def recv_frame(self, frame: Frame) -> None:
            seen.append((bytes(frame.data), len(self.reader.buffer)))
            super().recv_frame(frame)

    proto = Watching(state=OPEN)  # as websocket_handshake.py makes it after the upgrade
    masked = bytes([0x81, 0x82, 0, 0, 0, 0]) + b"hi"  # text "hi", zero mask key
    proto.receive_data(masked + masked[:3])
    assert seen == [(b"hi", 3)], (
        f"websockets {websockets.__version__}: recv_frame/reader.buffer no longer behave as "
        f"{USED_BY} assumes (saw {seen})")
    assert proto.events_received() == ["hi"]

