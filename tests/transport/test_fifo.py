"""The FIFO transport (``fifo:///path``) with real named pipes, on the stdlib loop and uvloop.

Covers bytes (1 byte, 1 MiB, many small writes, many concurrent clients), half-close both
ways, identity and credentials, file hygiene (no leftovers, live rendezvous never stolen, stale
one reclaimed, non-FIFO kept, mode), admit lists, a stalled or lying client that must not wedge
the server, plain/buffered protocols at the asyncio level, and tracing.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import trunkline
from trunkline import ListenOptions, Stream
from trunkline.address import FifoAddress, FifoIdentity, PeerCredentials
from trunkline.errors import (
    AddressInUseError,
    ConnectError,
    NotASocketError,
    PeerNotAllowedError,
)
from trunkline.trace import Step, Tracer
from trunkline.transport import ConnectOptions, fifo
from trunkline.transport.base import KIND

pytestmark = [pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"]),
              pytest.mark.timeout(30)]


async def echo(stream: Stream) -> None:
    async for chunk in stream:
        stream.write(chunk)
        await stream.drain()


@pytest.fixture
async def rv(tmp_path: Path) -> AsyncIterator[str]:
    """URL of a running echo server's rendezvous FIFO."""
    url = f"fifo://{tmp_path}/rv.fifo"
    server = await trunkline.serve(echo, url)
    try:
        yield url
    finally:
        await server.aclose()


async def read_exactly(stream: Stream, n: int) -> bytes:
    return await stream.readexactly(n)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
    try:
        await fut
    finally:
        loop.remove_reader(fd)


# --------------------------------------------------------------------------- bytes


@pytest.mark.parametrize("size", [1, 1 << 20])
async def test_echo(rv: str, size: int) -> None:
    payload = os.urandom(size)
    async with await trunkline.connect(rv) as s:
        s.write(payload)
        assert await read_exactly(s, size) == payload


async def test_ten_thousand_small_writes(rv: str) -> None:
    async with await trunkline.connect(rv) as s:
        for i in range(10_000):
            s.write(b"%05d|" % i)
        await s.drain()
        got = await read_exactly(s, 60_000)
    assert got == b"".join(b"%05d|" % i for i in range(10_000))


async def test_fifty_concurrent_clients_never_mix(rv: str) -> None:
    async def one(i: int) -> bytes:
        payload = bytes([i]) * 20_000 + b"%d" % i
        async with await trunkline.connect(rv) as s:
            await s.send(payload)
            s.write_eof()
            got = b"".join([chunk async for chunk in s])
        assert got == payload
        return got

    results = await asyncio.gather(*(one(i) for i in range(60)))
    assert len(set(results)) == 60


# --------------------------------------------------------------------------- half-close


async def test_client_half_close_then_server_replies(tmp_path: Path) -> None:
    async def count(stream: Stream) -> None:
        n = 0
        async for chunk in stream:  # until the client's EOF
            n += len(chunk)
        await stream.send(b"got %d" % n)
        # the handler returning closes the connection: the client reads EOF

    url = f"fifo://{tmp_path}/hc"
    async with await trunkline.serve(count, url), await trunkline.connect(url) as s:
        await s.send(b"x" * 100_000)
        s.write_eof()
        assert b"".join([c async for c in s]) == b"got 100000"
        assert s.at_eof


async def test_server_half_close_then_client_sends(tmp_path: Path) -> None:
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def greet_then_listen(stream: Stream) -> None:
        await stream.send(b"hello")
        stream.write_eof()
        received.set_result(b"".join([c async for c in stream]))

    url = f"fifo://{tmp_path}/hs"
    async with await trunkline.serve(greet_then_listen, url), await trunkline.connect(url) as s:
        assert b"".join([c async for c in s]) == b"hello"  # server's EOF seen
        await s.send(b"still open this way")
        s.write_eof()
        assert await asyncio.wait_for(received, 10) == b"still open this way"


# --------------------------------------------------------------------------- identity


async def test_identity_and_credentials(tmp_path: Path) -> None:
    seen: asyncio.Future[Stream] = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def handler(stream: Stream) -> None:
        seen.set_result(stream)
        await done.wait()

    url = f"fifo://{tmp_path}/id"
    async with await trunkline.serve(handler, url), await trunkline.connect(url) as c:
        s = await asyncio.wait_for(seen, 10)
        assert isinstance(c.local, FifoIdentity)
        assert c.peer == s.local and s.peer == c.local
        assert c.local.read_path.endswith("/s2c") and c.local.write_path.endswith("/c2s")
        me = PeerCredentials(os.getpid(), os.getuid(), os.getgid())
        assert s.peer_credentials == me  # the client: this process
        assert c.peer_credentials == me  # the server: this process, rendezvous owner
        assert c.transport.get_extra_info(KIND) == "fifo"
        assert "fifo" in repr(c)
        done.set()


async def test_credentials_of_a_client_in_another_process(tmp_path: Path) -> None:
    pids: asyncio.Queue[int | None] = asyncio.Queue()

    async def handler(stream: Stream) -> None:
        creds = stream.peer_credentials
        await pids.put(creds.pid if creds else None)
        await echo(stream)

    url = f"fifo://{tmp_path}/child"
    code = ("import asyncio, trunkline\n"
            "async def main():\n"
            f"    s = await trunkline.connect({url!r})\n"
            "    await s.send(b'ping'); assert await s.readexactly(4) == b'ping'\n"
            "    await s.aclose()\n"
            "asyncio.run(main())\n")
    async with await trunkline.serve(handler, url):
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
        assert await asyncio.wait_for(child.wait(), 20) == 0
        assert await pids.get() == child.pid


# --------------------------------------------------------------------------- file hygiene


async def test_no_files_or_fds_left_behind(tmp_path: Path) -> None:
    path = tmp_path / "clean"
    async with await trunkline.serve(echo, f"fifo://{path}"), \
            await trunkline.connect(f"fifo://{path}"):
        pass  # warm-up: uvloop opens one /dev/null descriptor per loop on first use
    before = open_fds()
    server = await trunkline.serve(echo, f"fifo://{path}")
    for _ in range(3):
        async with await trunkline.connect(f"fifo://{path}") as s:
            await s.send(b"abc")
            assert await s.readexactly(3) == b"abc"
            assert os.listdir(tmp_path) == ["clean"]  # pair names go once both ends are open
    assert os.listdir(tmp_path) == ["clean"]
    await server.aclose()
    assert os.listdir(tmp_path) == []  # the rendezvous goes with the listener
    for _ in range(3):  # uvloop closes descriptors in close callbacks, an iteration later
        await asyncio.sleep(0)
    assert open_fds() <= before


async def test_close_leaves_a_replaced_rendezvous_alone(tmp_path: Path) -> None:
    path = tmp_path / "rv"
    listener = await fifo.listen(FifoAddress(str(path)), asyncio.Protocol, ListenOptions())
    os.unlink(path)
    os.mkfifo(path)  # someone else's now
    listener.close()
    await listener.wait_closed()
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


async def test_live_server_is_not_stolen(rv: str) -> None:
    with pytest.raises(AddressInUseError, match="in use") as info:
        await trunkline.serve(echo, rv)
    assert rv.removeprefix("fifo://") in str(info.value)
    async with await trunkline.connect(rv) as s:  # the first server still answers
        await s.send(b"ok")
        assert await s.readexactly(2) == b"ok"


async def test_stale_fifo_is_refused_then_reclaimed(tmp_path: Path) -> None:
    path = tmp_path / "stale"
    os.mkfifo(path, 0o600)  # left by a server that died: nobody reads it
    with pytest.raises(ConnectError, match="no server is listening"):
        await trunkline.connect(f"fifo://{path}")
    async with await trunkline.serve(echo, f"fifo://{path}"), \
            await trunkline.connect(f"fifo://{path}") as s:
        await s.send(b"hi")
        assert await s.readexactly(2) == b"hi"


async def test_missing_fifo_and_non_fifo(tmp_path: Path) -> None:
    with pytest.raises(ConnectError, match="no such FIFO"):
        await trunkline.connect(f"fifo://{tmp_path}/nothing")
    regular = tmp_path / "data.txt"
    regular.write_text("precious")
    with pytest.raises(NotASocketError, match="not a FIFO"):
        await trunkline.serve(echo, f"fifo://{regular}")
    assert regular.read_text() == "precious"
    with pytest.raises(ConnectError, match="not a FIFO"):
        await trunkline.connect(f"fifo://{regular}")
    assert regular.read_text() == "precious"


@pytest.mark.parametrize("mode", [None, 0o620, 0o666])
async def test_mode(tmp_path: Path, mode: int | None) -> None:
    path = tmp_path / "m"
    options = ListenOptions() if mode is None else ListenOptions(mode=mode)
    async with await trunkline.serve(echo, f"fifo://{path}", options=options):
        assert stat.S_IMODE(os.lstat(path).st_mode) == (0o600 if mode is None else mode)
        async with await trunkline.connect(f"fifo://{path}") as s:
            await s.send(b"m")
            assert await s.readexactly(1) == b"m"


# --------------------------------------------------------------------------- admission


async def test_admit_lists(tmp_path: Path) -> None:
    url = f"fifo://{tmp_path}/adm"
    others = frozenset({os.getuid() + 4242})
    async with await trunkline.serve(echo, url, options=ListenOptions(allow_uids=others)):
        with pytest.raises(PeerNotAllowedError, match="not admitted"):
            await trunkline.connect(url)
    assert os.listdir(tmp_path) == []  # the refused pair was removed too
    mine = ListenOptions(allow_uids=others, allow_gids=frozenset({os.getgid()}))
    async with await trunkline.serve(echo, url, options=mine), \
            await trunkline.connect(url) as s:
        await s.send(b"in")
        assert await s.readexactly(2) == b"in"


# --------------------------------------------------------------------------- robustness


def _fake_pair(path: Path) -> str:
    """A correctly named pair directory for the rendezvous at ``path`` (nobody opens it)."""
    pair = tempfile.mkdtemp(prefix=fifo._pair_prefix(os.stat(path)), dir=path.parent)
    os.mkfifo(os.path.join(pair, "c2s"), 0o600)
    os.mkfifo(os.path.join(pair, "s2c"), 0o600)
    return pair


async def test_stalled_and_lying_clients_do_not_wedge_the_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fifo, "HANDSHAKE_TIMEOUT", 0.5)
    path = tmp_path / "rv"
    async with await trunkline.serve(echo, f"fifo://{path}"):
        stalled = _fake_pair(path)  # announces, opens its read end, then never goes on
        stalled_fd = os.open(os.path.join(stalled, "s2c"), os.O_RDONLY | os.O_NONBLOCK)
        dead = _fake_pair(path)  # announces and is gone: no end open at all
        other_dir = tempfile.mkdtemp(prefix="trunkline-0-0-", dir=tmp_path)  # not for us
        w = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(w, b"trunkline-fifo 1 %d %s\n" % (os.getpid(), stalled.encode()))
            os.write(w, b"trunkline-fifo 1 %d %s\n" % (os.getpid(), dead.encode()))
            for junk in (b"\n", b"hello\n", b"\xff\xfe\x00garbage\n", b"trunkline-fifo 1 x /\n",
                         b"trunkline-fifo 1 1 relative/dir\n", b"trunkline-fifo 9 1 /tmp\n",
                         b"trunkline-fifo 1 1 %s\n" % other_dir.encode(),
                         b"trunkline-fifo 1 1 %s/nope\n" % str(tmp_path).encode(),
                         b"trunkline-fifo 1 1 %s\n" % stalled.encode(),  # the same pair twice
                         b"y" * 3000, b"z" * 3000 + b"\n"):  # an over-long line
                os.write(w, junk)
            async with await trunkline.connect(f"fifo://{path}", timeout=10) as s:
                await s.send(b"still serving")
                assert await s.readexactly(13) == b"still serving"
            assert not os.path.exists(dead)  # its handshake failed at once; server removed it
            # the stalled client: the server gives up after HANDSHAKE_TIMEOUT and hangs up
            reply = b""
            while True:
                await asyncio.wait_for(readable(stalled_fd), 10)
                chunk = os.read(stalled_fd, 100)
                if not chunk:
                    break
                reply += chunk
            assert reply == b"+%d\n" % os.getpid()
            assert not os.path.exists(stalled)
            async with await trunkline.connect(f"fifo://{path}", timeout=10) as s:
                await s.send(b"and after")
                assert await s.readexactly(9) == b"and after"
        finally:
            os.close(w)
            os.close(stalled_fd)
            os.rmdir(other_dir)


async def test_listener_close_cancels_pending_handshakes(tmp_path: Path) -> None:
    path = tmp_path / "rv"
    listener = await fifo.listen(FifoAddress(str(path)), asyncio.Protocol, ListenOptions())
    stalled = _fake_pair(path)
    fd = os.open(os.path.join(stalled, "s2c"), os.O_RDONLY | os.O_NONBLOCK)
    try:
        w = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.write(w, b"trunkline-fifo 1 %d %s\n" % (os.getpid(), stalled.encode()))
        os.close(w)
        await asyncio.wait_for(readable(fd), 10)  # the server has answered: handshake pending
        listener.close()
        await asyncio.wait_for(listener.wait_closed(), 10)
        assert not os.path.exists(path)
    finally:
        os.close(fd)


async def test_listener_close_hangs_up_on_unanswered_clients(tmp_path: Path) -> None:
    path = tmp_path / "rv"
    listener = await fifo.listen(FifoAddress(str(path)), asyncio.Protocol, ListenOptions())
    waiting = _fake_pair(path)
    fd = os.open(os.path.join(waiting, "s2c"), os.O_RDONLY | os.O_NONBLOCK)
    try:
        w = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.write(w, b"trunkline-fifo 1 %d %s\n" % (os.getpid(), waiting.encode()))
        os.close(w)
        listener.close()  # no await since the write: the announcement is still unread
        await asyncio.wait_for(readable(fd), 10)
        assert os.read(fd, 100) == b""  # a hang-up, not an answer
        await listener.wait_closed()
    finally:
        os.close(fd)


async def test_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with await trunkline.serve(echo, "fifo:rel.fifo"), \
            await trunkline.connect("fifo:rel.fifo") as s:
        assert stat.S_ISFIFO(os.lstat(tmp_path / "rel.fifo").st_mode)
        await s.send(b"rel")
        assert await s.readexactly(3) == b"rel"


async def test_connect_timeout_when_nobody_answers(tmp_path: Path) -> None:
    path = tmp_path / "mute"
    os.mkfifo(path, 0o600)
    keep = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # a reader that never answers
    try:
        with pytest.raises(TimeoutError):
            await trunkline.connect(f"fifo://{path}", timeout=0.3)
    finally:
        os.close(keep)
    assert os.listdir(tmp_path) == ["mute"]  # the client removed its pair


# --------------------------------------------------------------------------- asyncio level


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()
        self.got_eof = asyncio.Event()
        self.arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append("made")
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.arrived.set()

    async def wait_for(self, n: int) -> None:
        while len(self.data) < n:
            self.arrived.clear()
            await self.arrived.wait()

    def eof_received(self) -> bool:
        self.calls.append("eof")
        self.got_eof.set()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("lost")
        self.lost.set_result(exc)


class Buffered(asyncio.BufferedProtocol):
    """A pure BufferedProtocol (no data_received) with a tiny buffer, to force chunking."""

    def __init__(self) -> None:
        self.buf = bytearray(7)
        self.data = bytearray()
        self.eof = asyncio.Event()
        self.lost = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.data += self.buf[:nbytes]

    def eof_received(self) -> bool:
        self.eof.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool:
        self.transport.write_eof()
        return True


@pytest.mark.parametrize("client_kind", [Recorder, Buffered])
async def test_plain_and_buffered_protocols(tmp_path: Path, client_kind: type) -> None:
    address = FifoAddress(str(tmp_path / "p"))
    listener = await fifo.listen(address, EchoProtocol, ListenOptions())
    try:
        transport, proto = await fifo.open_fifo(address, client_kind, ConnectOptions())
        assert isinstance(proto, client_kind)
        assert transport.can_write_eof()
        transport.set_write_buffer_limits(high=1 << 16)
        transport.writelines([b"abc", b"defghijklmnop"])
        transport.write_eof()
        with pytest.raises(RuntimeError):
            transport.write(b"late")
        assert await asyncio.wait_for(proto.lost, 10) is None
        assert bytes(proto.data) == b"abcdefghijklmnop"
        assert transport.is_closing()
        if isinstance(proto, Recorder):
            assert proto.calls == ["made", "eof", "lost"]  # each exactly once, in order
    finally:
        listener.close()
        await listener.wait_closed()


async def test_close_and_abort_report_lost_once(tmp_path: Path) -> None:
    address = FifoAddress(str(tmp_path / "p"))
    listener = await fifo.listen(address, EchoProtocol, ListenOptions())
    try:
        for how in ("close", "abort"):
            transport, proto = await fifo.open_fifo(address, Recorder, ConnectOptions())
            transport.write(b"x")
            getattr(transport, how)()
            getattr(transport, how)()  # twice is harmless
            assert await asyncio.wait_for(proto.lost, 10) is None
            assert proto.calls.count("lost") == 1 and proto.calls[0] == "made"
    finally:
        listener.close()
        await listener.wait_closed()


async def test_pause_reading_applies_backpressure(rv: str) -> None:
    address = FifoAddress(rv.removeprefix("fifo://"))
    transport, proto = await fifo.open_fifo(address, Recorder, ConnectOptions())
    assert isinstance(proto, Recorder)
    transport.pause_reading()
    assert not transport.is_reading()  # type: ignore[attr-defined]
    transport.write(b"q" * 1000)
    transport.resume_reading()
    await asyncio.wait_for(proto.wait_for(1000), 10)
    assert bytes(proto.data) == b"q" * 1000
    transport.close()
    await asyncio.wait_for(proto.lost, 10)


# --------------------------------------------------------------------------- tracing


async def test_tracer_records_socket_and_connect(rv: str) -> None:
    tracer = Tracer()
    async with await trunkline.connect(rv, tracer=tracer):
        pass
    steps = [e.step for e in tracer.events]
    assert steps[:2] == [Step.SOCKET, Step.CONNECT]
    connect = tracer.events[1]
    assert connect.detail["how"] == "FIFO rendezvous" and connect.detail["peer"] == rv
    assert tracer.events[0].detail["family"] == "fifo"
