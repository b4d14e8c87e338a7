"""One suite, every socket kind: whatever the transport, a stream (or datagram) behaves the same.

Each stream kind starts a real server and hands back the URL a client dials; every check runs
against every kind, on the stdlib loop and on uvloop. Adding a kind means adding one entry to
``STREAM_KINDS`` (or ``DATAGRAM_KINDS``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import trunkline
from trunkline import Server, Stream
from trunkline.address import Identity, PeerCredentials

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

Handler = Callable[[Stream], Awaitable[None]]
_names = itertools.count()


def _have_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- kinds


@dataclass
class Running:
    server: Server
    url: str  # what a client dials
    released: Callable[[], bool]  # after close: is the address free again?


def _port_free(family: socket.AddressFamily, host: str, port: int) -> bool:
    with socket.socket(family) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _abstract_free(name: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.bind(b"\0" + name.encode())
        except OSError:
            return False
    return True


async def _tcp(handler: Handler, tmp: Path, host: str) -> Running:
    server = await trunkline.serve(handler, f"tcp://{host}:0")
    url = server.urls[0]
    port = int(url.rsplit(":", 1)[1])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return Running(server, url, lambda: _port_free(family, host.strip("[]"), port))


async def _tcp4(handler: Handler, tmp: Path) -> Running:
    return await _tcp(handler, tmp, "127.0.0.1")


async def _tcp6(handler: Handler, tmp: Path) -> Running:
    if not _have_ipv6():
        pytest.skip("no IPv6 loopback")
    return await _tcp(handler, tmp, "[::1]")


async def _unix_path(handler: Handler, tmp: Path) -> Running:
    path = tmp / "conf.sock"
    server = await trunkline.serve(handler, f"unix://{path}")
    return Running(server, f"unix://{path}", lambda: not os.path.lexists(path))


async def _unix_abstract(handler: Handler, tmp: Path) -> Running:
    name = f"trunkline-conf-{os.getpid()}-{next(_names)}"
    server = await trunkline.serve(handler, f"unix:@{name}")
    return Running(server, f"unix:@{name}", lambda: _abstract_free(name))


async def _fifo(handler: Handler, tmp: Path) -> Running:
    path = tmp / "conf.fifo"
    server = await trunkline.serve(handler, f"fifo://{path}")
    return Running(server, f"fifo://{path}", lambda: not os.path.lexists(path))


async def _fd_tcp(handler: Handler, tmp: Path) -> Running:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = await trunkline.serve(handler, f"fd://{sock.detach()}")
    return Running(server, f"tcp://127.0.0.1:{port}",
                   lambda: _port_free(socket.AF_INET, "127.0.0.1", port))


async def _fd_unix(handler: Handler, tmp: Path) -> Running:
    path = tmp / "inherited.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen()
    server = await trunkline.serve(handler, f"fd://{sock.detach()}")

    def released() -> bool:
        # The file belongs to whoever bound it; the listener's job is to close the socket.
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(path))
            except ConnectionRefusedError:
                return True
        return False

    return Running(server, f"unix://{path}", released)


STREAM_KINDS: dict[str, Callable[[Handler, Path], Awaitable[Running]]] = {
    "tcp4": _tcp4, "tcp6": _tcp6, "unix": _unix_path, "abstract": _unix_abstract,
    "fifo": _fifo, "fd-tcp": _fd_tcp, "fd-unix": _fd_unix,
}
LOCAL_KINDS = {"unix", "abstract", "fifo", "fd-unix"}


@pytest.fixture(params=list(STREAM_KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def start(kind: str, short_tmp: Path) -> AsyncIterator[Callable[[Handler],
                                                                      Awaitable[Running]]]:
    """start(handler) -> Running; every server started is closed after the test."""
    started: list[Running] = []

    async def go(handler: Handler) -> Running:
        running = await STREAM_KINDS[kind](handler, short_tmp)
        started.append(running)
        return running

    yield go
    for running in started:
        await running.server.aclose(grace=1)


async def echo(stream: Stream) -> None:
    while data := await stream.read():
        await stream.send(data)


async def send_all_then_eof(stream: Stream, chunks: list[bytes]) -> None:
    for chunk in chunks:
        stream.write(chunk)
        await stream.drain()
    stream.write_eof()


async def read_all(stream: Stream) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def echo_through(url: str, chunks: list[bytes]) -> bytes:
    """Send ``chunks`` then EOF while reading the echo concurrently (no deadlock on big data)."""
    async with await trunkline.connect(url, timeout=10) as stream:
        _, got = await asyncio.gather(send_all_then_eof(stream, chunks), read_all(stream))
        return got


# --------------------------------------------------------------------------- stream checks


async def test_connect(start: Callable[[Handler], Awaitable[Running]]) -> None:
    running = await start(echo)
    stream = await trunkline.connect(running.url, timeout=10)
    assert not stream.at_eof
    await stream.aclose()


async def test_echo_one_byte(start: Callable[[Handler], Awaitable[Running]]) -> None:
    running = await start(echo)
    async with await trunkline.connect(running.url, timeout=10) as stream:
        await stream.send(b"\x00")
        assert await stream.readexactly(1) == b"\x00"


async def test_echo_one_mebibyte(start: Callable[[Handler], Awaitable[Running]]) -> None:
    running = await start(echo)
    payload = os.urandom(1 << 20)
    assert await echo_through(running.url, [payload]) == payload


async def test_echo_ten_thousand_small_writes(
        start: Callable[[Handler], Awaitable[Running]]) -> None:
    running = await start(echo)
    chunks = [f"{i:05d},".encode() for i in range(10_000)]
    async with await trunkline.connect(running.url, timeout=10) as stream:
        async def write() -> None:
            for chunk in chunks:
                stream.write(chunk)  # no drain in between: many tiny writes back to back
            await stream.drain()

        _, got = await asyncio.gather(write(), stream.readexactly(6 * 10_000))
    assert got == b"".join(chunks)


async def test_fifty_concurrent_clients_get_their_own_bytes(
        start: Callable[[Handler], Awaitable[Running]]) -> None:
    running = await start(echo)
    payloads = [(f"<client {i:02d}>".encode()) * (500 + 37 * i) for i in range(50)]
    results = await asyncio.gather(*(echo_through(running.url, [p[:1000], p[1000:]])
                                     for p in payloads))
    assert results == payloads


async def test_eof_both_ways(start: Callable[[Handler], Awaitable[Running]]) -> None:
    """Client half-closes; the server reads to EOF, answers, closes; the client reads the
    answer and then EOF."""
    server_saw_eof = asyncio.Event()

    async def count_then_reply(stream: Stream) -> None:
        total = 0
        while data := await stream.read():
            total += len(data)
        server_saw_eof.set()
        await stream.send(f"got {total}".encode())
        await stream.aclose()

    running = await start(count_then_reply)
    async with await trunkline.connect(running.url, timeout=10) as stream:
        await stream.send(b"x" * 5000)
        assert stream.can_write_eof()
        stream.write_eof()
        await asyncio.wait_for(server_saw_eof.wait(), 10)
        assert await read_all(stream) == b"got 5000"
        assert await stream.read() == b""
        assert stream.at_eof


async def test_peer_identity_agrees(kind: str,
                                    start: Callable[[Handler], Awaitable[Running]]) -> None:
    seen: asyncio.Future[tuple[Identity, Identity | None, PeerCredentials | None]] = (
        asyncio.get_running_loop().create_future())

    async def note(stream: Stream) -> None:
        seen.set_result((stream.local, stream.peer, stream.peer_credentials))
        await echo(stream)

    running = await start(note)
    async with await trunkline.connect(running.url, timeout=10) as stream:
        server_local, server_peer, server_creds = await asyncio.wait_for(seen, 10)
        assert server_peer is not None and stream.peer is not None
        assert server_peer == stream.local  # the server sees the client as it sees itself
        assert stream.peer == server_local  # and vice versa
        if kind in LOCAL_KINDS:
            for creds in (server_creds, stream.peer_credentials):
                assert creds is not None
                assert (creds.uid, creds.gid) == (os.getuid(), os.getgid())
                assert creds.pid in (os.getpid(), None)
        else:
            assert server_creds is None and stream.peer_credentials is None


async def test_clean_close(start: Callable[[Handler], Awaitable[Running]]) -> None:
    handler_saw_eof = asyncio.Event()

    async def until_eof(stream: Stream) -> None:
        assert await stream.read() == b"bye"
        assert await stream.read() == b""
        handler_saw_eof.set()

    running = await start(until_eof)
    stream = await trunkline.connect(running.url, timeout=10)
    await stream.send(b"bye")
    await stream.aclose()
    await asyncio.wait_for(handler_saw_eof.wait(), 10)
    assert not running.released()  # still listening ...
    await running.server.aclose(grace=1)
    assert running.released()  # ... and after close the address is free again


# --------------------------------------------------------------------------- datagram kinds


async def _udp(tmp: Path) -> str:
    return "udp://127.0.0.1:0"


async def _udp6(tmp: Path) -> str:
    if not _have_ipv6():
        pytest.skip("no IPv6 loopback")
    return "udp://[::1]:0"


async def _unixgram_path(tmp: Path) -> str:
    return f"unixgram://{tmp / 'conf.dgram'}"


async def _unixgram_abstract(tmp: Path) -> str:
    return f"unixgram:@trunkline-conf-{os.getpid()}-{next(_names)}"


DATAGRAM_KINDS: dict[str, Callable[[Path], Awaitable[str]]] = {
    "udp": _udp, "udp6": _udp6, "unixgram": _unixgram_path,
    "unixgram-abstract": _unixgram_abstract,
}

DatagramHandler = Callable[[bytes, Identity], Awaitable[bytes | None]]


@pytest.fixture(params=list(DATAGRAM_KINDS))
async def dgram(request: pytest.FixtureRequest, short_tmp: Path
                ) -> AsyncIterator[Callable[[DatagramHandler], Awaitable[tuple[Server, str]]]]:
    """dgram(handler) -> (server, url a client sends to); closed after the test."""
    servers: list[Server] = []

    async def go(handler: DatagramHandler) -> tuple[Server, str]:
        url = await DATAGRAM_KINDS[request.param](short_tmp)
        server = await trunkline.serve(None, url, datagram_handler=handler)
        servers.append(server)
        return server, server.urls[0]

    yield go
    for server in servers:
        await server.aclose(grace=1)


async def dgram_echo(data: bytes, source: Identity) -> bytes:
    return data


async def test_datagram_echo(
        dgram: Callable[[DatagramHandler], Awaitable[tuple[Server, str]]]) -> None:
    _, url = await dgram(dgram_echo)
    async with await trunkline.open_datagram(url) as endpoint:
        await endpoint.send(b"hello")
        data, _ = await endpoint.recv(timeout=10)
        assert data == b"hello"


async def test_datagram_boundaries_are_kept(
        dgram: Callable[[DatagramHandler], Awaitable[tuple[Server, str]]]) -> None:
    _, url = await dgram(dgram_echo)
    sent = [bytes([65 + i]) * size for i, size in enumerate([1, 1000, 3, 8000, 2])]
    async with await trunkline.open_datagram(url) as endpoint:
        for message in sent:
            await endpoint.send(message)
        got = [(await endpoint.recv(timeout=10))[0] for _ in sent]
    # One datagram in, one datagram out, never merged or split (order is not promised).
    assert sorted(got) == sorted(sent)


async def test_datagram_concurrent_clients(
        dgram: Callable[[DatagramHandler], Awaitable[tuple[Server, str]]]) -> None:
    _, url = await dgram(dgram_echo)

    async def client(i: int) -> tuple[list[bytes], list[bytes]]:
        messages = [f"client {i} message {j}".encode() for j in range(5)]
        async with await trunkline.open_datagram(url) as endpoint:
            for message in messages:
                await endpoint.send(message)
            got = [(await endpoint.recv(timeout=10))[0] for _ in messages]
        return sorted(messages), sorted(got)

    for sent, got in await asyncio.gather(*(client(i) for i in range(20))):
        assert got == sent  # each client gets its own replies, and only those


async def test_datagram_source_identity(
        dgram: Callable[[DatagramHandler], Awaitable[tuple[Server, str]]]) -> None:
    sources: list[Identity] = []

    async def note(data: bytes, source: Identity) -> bytes:
        sources.append(source)
        return data

    _, url = await dgram(note)
    async with await trunkline.open_datagram(url) as endpoint:
        await endpoint.send(b"who am i")
        data, reply_source = await endpoint.recv(timeout=10)
        assert data == b"who am i"
        assert sources == [endpoint.local]  # the server sees where we send from
        assert reply_source == endpoint.peer  # and the reply comes from where we sent to


async def test_datagram_close_releases_the_address(
        dgram: Callable[[DatagramHandler], Awaitable[tuple[Server, str]]]) -> None:
    server, url = await dgram(dgram_echo)
    address = trunkline.parse_address(url)
    await server.aclose(grace=1)
    if isinstance(address, trunkline.UdpAddress):
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((address.host, address.port))
    else:
        assert isinstance(address, trunkline.UnixAddress)
        if address.abstract:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.bind(address.sockaddr)
        else:
            assert not os.path.lexists(address.path)
