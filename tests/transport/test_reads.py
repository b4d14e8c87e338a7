"""``transport.reads``: which read callback each loop calls for the class ``for_transport``
picks (over a real socket pair), and ``feeder``, the one way we hand bytes to a protocol."""

from __future__ import annotations

import asyncio
import socket

import pytest

from trunkline.transport.reads import ReadsBothWays, feed, feeder

pytestmark = pytest.mark.timeout(30)


class Recorder(ReadsBothWays):
    """Records which callback brought each read."""

    def __init__(self) -> None:
        self.buffer = bytearray(4096)
        self.reads: list[tuple[str, bytes]] = []
        self.got = asyncio.Event()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.reads.append(("buffer_updated", bytes(self.buffer[:nbytes])))
        self.got.set()

    def data_received(self, data: bytes) -> None:
        self.reads.append(("data_received", data))
        self.got.set()


def test_the_plain_class_is_made_once_and_is_both_kinds_of_protocol() -> None:
    plain = Recorder.for_transport(tls=False)
    assert Recorder.for_transport(tls=False) is plain
    assert Recorder.for_transport(tls=True) is Recorder
    assert issubclass(plain, Recorder) and issubclass(plain, asyncio.Protocol)
    assert not issubclass(Recorder, asyncio.Protocol)
    assert plain.__name__ == "Recorder"


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
@pytest.mark.parametrize("tls", [False, True], ids=["plain-class", "tls-class"])
async def test_each_loop_calls_the_callback_the_class_asks_for(tls: bool) -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    with theirs:
        transport, protocol = await loop.connect_accepted_socket(
            Recorder.for_transport(tls), ours)
        try:
            theirs.sendall(b"hello")
            await asyncio.wait_for(protocol.got.wait(), 10)
        finally:
            transport.close()
    on_uvloop = type(loop).__module__.startswith("uvloop")
    expected = "data_received" if on_uvloop and not tls else "buffer_updated"
    assert protocol.reads == [(expected, b"hello")]


class PureBuffered(asyncio.BufferedProtocol):
    def __init__(self, size: int) -> None:
        self.buffer = bytearray(size)
        self.got = bytearray()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.got += self.buffer[:nbytes]


def test_feeder_prefers_data_received() -> None:
    recorder = Recorder()
    feed(recorder, b"abc")
    assert recorder.reads == [("data_received", b"abc")]


def test_feeder_fills_a_small_buffer_as_often_as_needed() -> None:
    protocol = PureBuffered(3)
    feed(protocol, b"0123456789")
    assert protocol.got == b"0123456789"


def test_feeder_refuses_an_empty_buffer_instead_of_looping() -> None:
    with pytest.raises(RuntimeError, match="empty buffer"):
        feed(PureBuffered(0), b"x")


def test_feeder_refuses_a_protocol_that_cannot_read() -> None:
    with pytest.raises(TypeError, match="neither"):
        feeder(asyncio.BaseProtocol())
