"""Datagram endpoints and serving over UDP (IPv4, IPv6) and Unix datagram sockets (path,
abstract): real sockets on 127.0.0.1, ::1 and short /tmp paths, on both event loops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import trunkline
from trunkline import ListenOptions, UnixIdentity
from trunkline.address import Identity, SocketIdentity, UdpAddress, UnixAddress, format_address
from trunkline.aio.datagram import DatagramEndpoint
from trunkline.aio.datagram_server import serve_datagram
from trunkline.errors import (
    AddressInUseError,
    ConnectError,
    DatagramTooLargeError,
    NotASocketError,
    TransportError,
    TrunklineTimeoutError,
    UnsupportedError,
)
from trunkline.trace import Step, Tracer
from trunkline.transport.datagram import UDP_MAX_IPV4, UDP_MAX_IPV6

pytestmark = [pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"]), pytest.mark.timeout(30)]

KINDS = ["udp4", "udp6", "unixgram-path", "unixgram-abstract"]
_names = iter(range(1_000_000))


@pytest.fixture
def make_url(short_tmp: Path) -> Callable[[str], str]:
    """A fresh listening URL of a kind: port 0, or a new path/abstract name."""

    def make(kind: str) -> str:
        n = next(_names)
        return {
            "udp4": "udp://127.0.0.1:0",
            "udp6": "udp://[::1]:0",
            "unixgram-path": f"unixgram://{short_tmp}/s{n}.dgram",
            "unixgram-abstract": f"unixgram:@trunkline-test-{os.getpid()}-{n}",
        }[kind]

    return make


async def echo(data: bytes, source: Identity) -> bytes:
    return data


@contextlib.asynccontextmanager
async def echo_server(url: str, handler=echo) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    async with await trunkline.serve(None, url, datagram_handler=handler) as server:
        yield server.urls[0]


# --------------------------------------------------------------------------- echo, identities


@pytest.mark.parametrize("kind", KINDS)
async def test_echo_and_identities(kind: str, make_url: Callable[[str], str]) -> None:
    seen: list[Identity] = []

    async def record(data: bytes, source: Identity) -> bytes:
        seen.append(source)
        return data.upper()

    async with echo_server(make_url(kind), record) as url:
        bound = trunkline.parse_address(url)
        if isinstance(bound, UdpAddress):
            assert bound.port != 0  # port 0 resolved
        async with await trunkline.open_datagram(url) as ep:
            await ep.send(b"hello")
            data, source = await ep.recv(timeout=5)
            assert data == b"HELLO"
            assert source == ep.peer
            assert seen == [ep.local]  # the server saw exactly our socket as the source
            if isinstance(bound, UdpAddress):
                assert isinstance(source, SocketIdentity) and source.protocol == "udp"
                assert (source.ip, source.port) == (bound.host, bound.port)
            else:
                assert source == UnixIdentity(bound.path, bound.abstract, datagram=True)
                assert isinstance(ep.local, UnixIdentity) and ep.local.abstract  # autobound
                assert ep.local.path  # has a name, so the reply could reach it


@pytest.mark.parametrize("kind", KINDS)
async def test_boundaries_kept(kind: str, make_url: Callable[[str], str]) -> None:
    sizes = [1, 1000, 30000]
    async with echo_server(make_url(kind)) as url, await trunkline.open_datagram(url) as ep:
        for i, size in enumerate(sizes):
            await ep.send(bytes([i]) * size)
        got = [await ep.recv(timeout=5) for _ in sizes]
        assert sorted(len(d) for d, _ in got) == sorted(sizes)  # exactly 3, sizes intact
        for data, _ in got:
            assert data == bytes([sizes.index(len(data))]) * len(data)
        with pytest.raises(TrunklineTimeoutError):
            await ep.recv(timeout=0.2)  # and nothing more


@pytest.mark.parametrize("kind", KINDS)
async def test_one_byte_empty_and_max_size(kind: str, make_url: Callable[[str], str]) -> None:
    async with echo_server(make_url(kind)) as url, await trunkline.open_datagram(url) as ep:
        expected = {"udp4": UDP_MAX_IPV4, "udp6": UDP_MAX_IPV6}.get(kind, ep.max_size)
        assert ep.max_size == expected
        for payload in (b"\x00", b"", os.urandom(ep.max_size)):
            await ep.send(payload)
            data, _ = await ep.recv(timeout=5)
            assert data == payload


@pytest.mark.parametrize("kind", KINDS)
async def test_too_large_is_refused_before_sending(kind: str,
                                                   make_url: Callable[[str], str]) -> None:
    async with echo_server(make_url(kind)) as url, await trunkline.open_datagram(url) as ep:
        size = ep.max_size + 1
        with pytest.raises(DatagramTooLargeError) as info:
            await ep.send(b"x" * size)
        assert str(size) in str(info.value) and str(ep.max_size) in str(info.value)
        await ep.send(b"still fine")  # the endpoint is still usable
        assert (await ep.recv(timeout=5))[0] == b"still fine"


async def test_kernel_emsgsize_is_translated(make_url: Callable[[str], str]) -> None:
    """A limit we could not know in advance (SO_SNDBUF lowered behind our back)."""
    async with echo_server(make_url("unixgram-abstract")) as url, \
            await trunkline.open_datagram(url) as ep:
        sock = ep.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        size = 32 * 1024
        assert size <= ep.max_size  # our check passes; the kernel refuses
        with pytest.raises(DatagramTooLargeError) as info:
            await ep.send(b"x" * size)
        assert str(size) in str(info.value)


# --------------------------------------------------------------------------- many clients


@pytest.mark.parametrize("kind", ["udp4", "unixgram-path"])
async def test_fifty_concurrent_clients_get_only_their_own_data(
        kind: str, make_url: Callable[[str], str]) -> None:
    async with echo_server(make_url(kind)) as url:

        async def client(n: int) -> None:
            async with await trunkline.open_datagram(url) as ep:
                for i in range(5):
                    payload = f"client {n} message {i}".encode() * (n + 1)
                    await ep.send(payload)
                    data, _ = await ep.recv(timeout=5)
                    assert data == payload

        async with asyncio.timeout(20):
            await asyncio.gather(*(client(n) for n in range(60)))


# --------------------------------------------------------------------------- unconnected


@pytest.mark.parametrize("kind", KINDS)
async def test_unconnected_send_to_and_recv(kind: str, make_url: Callable[[str], str]) -> None:
    async with await trunkline.bind_datagram(make_url(kind)) as a, \
            await trunkline.bind_datagram(make_url(kind)) as b:
        assert a.peer is None
        await a.send_to(b"to b by url", format_address(b.address))
        data, source = await b.recv(timeout=5)
        assert (data, source) == (b"to b by url", a.local)
        await b.send_to(b"back to the source", source)  # reply to the identity recv gave
        assert await a.recv(timeout=5) == (b"back to the source", b.local)
        await a.send_to(b"by address value", b.address)
        assert (await b.recv(timeout=5))[0] == b"by address value"
        with pytest.raises(UnsupportedError, match="send_to"):
            await a.send(b"no peer")


async def test_wrong_destination_kinds_say_why(make_url: Callable[[str], str]) -> None:
    async with await trunkline.bind_datagram("udp://127.0.0.1:0") as v4, \
            await trunkline.bind_datagram(make_url("unixgram-abstract")) as ux:
        with pytest.raises(UnsupportedError, match="IPv4"):
            await v4.send_to(b"x", SocketIdentity("::1", 9, "udp"))
        with pytest.raises(UnsupportedError, match="unixgram"):
            await v4.send_to(b"x", "unixgram:@nope")
        with pytest.raises(UnsupportedError, match="unbound"):
            await ux.send_to(b"x", UnixIdentity("", datagram=True))
        with pytest.raises(ConnectError, match="nothing is listening"):
            await ux.send_to(b"x", f"unixgram:@trunkline-test-{os.getpid()}-nobody")


async def test_unbound_unix_sender_is_served_but_gets_no_reply(
        make_url: Callable[[str], str]) -> None:
    seen: asyncio.Queue[Identity] = asyncio.Queue()

    async def record(data: bytes, source: Identity) -> bytes:
        await seen.put(source)
        return data

    async with echo_server(make_url("unixgram-abstract"), record) as url:
        bare = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # never bound: no name
        with bare:
            bare.sendto(b"anonymous", UnixAddress(url.split("@", 1)[1], True, True).sockaddr)
            async with asyncio.timeout(5):
                assert await seen.get() == UnixIdentity("", False, datagram=True)
        async with await trunkline.open_datagram(url) as ep:  # the server carries on
            await ep.send(b"named")
            assert (await ep.recv(timeout=5))[0] == b"named"


@pytest.mark.parametrize("kind", ["udp4", "unixgram-path"])
async def test_open_with_bind(kind: str, make_url: Callable[[str], str],
                              short_tmp: Path) -> None:
    async with echo_server(make_url(kind)) as url:
        local = make_url(kind)
        async with await trunkline.open_datagram(url, bind=local) as ep:
            await ep.send(b"from a fixed address")
            assert (await ep.recv(timeout=5))[0] == b"from a fixed address"
            if kind == "unixgram-path":
                path = local.removeprefix("unixgram://")
                assert ep.local == UnixIdentity(path, datagram=True)
                assert stat.S_ISSOCK(os.lstat(path).st_mode)
        if kind == "unixgram-path":
            assert not os.path.exists(path)  # removed on close


# --------------------------------------------------------------------------- hygiene


async def test_unixgram_socket_file_hygiene(short_tmp: Path) -> None:
    path = short_tmp / "h.dgram"
    url = f"unixgram://{path}"

    # a stale socket file (its owner died without unlinking) is reclaimed
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(path))
    stale.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    async with echo_server(url) as served, await trunkline.open_datagram(served) as ep:
        await ep.send(b"reclaimed")
        assert (await ep.recv(timeout=5))[0] == b"reclaimed"
        # a live one is never stolen
        inode = path.stat().st_ino
        with pytest.raises(AddressInUseError, match=str(path)):
            await trunkline.bind_datagram(url)
        with pytest.raises(AddressInUseError):
            await trunkline.serve(None, url, datagram_handler=echo)
        assert path.stat().st_ino == inode
        await ep.send(b"still served")
        assert (await ep.recv(timeout=5))[0] == b"still served"
    assert not path.exists()  # unlinked on close

    # a file that is not a socket is never removed
    path.write_text("precious")
    with pytest.raises(NotASocketError):
        await trunkline.bind_datagram(url)
    assert path.read_text() == "precious"
    path.unlink()

    # the mode is applied (both loosening past the umask and tightening)
    for mode in (0o666, 0o600):
        async with await trunkline.bind_datagram(url, options=ListenOptions(mode=mode)):
            assert stat.S_IMODE(os.lstat(path).st_mode) == mode

    # on close, a file that is no longer ours is left alone
    ep2 = await trunkline.bind_datagram(url)
    path.unlink()
    path.write_text("someone else's")
    await ep2.aclose()
    assert path.read_text() == "someone else's"


async def test_live_abstract_name_is_not_stolen(make_url: Callable[[str], str]) -> None:
    url = make_url("unixgram-abstract")
    async with await trunkline.bind_datagram(url):
        with pytest.raises(AddressInUseError):
            await trunkline.bind_datagram(url)


async def test_udp_port_in_use() -> None:
    async with await trunkline.bind_datagram("udp://127.0.0.1:0") as ep:
        with pytest.raises(AddressInUseError):
            await trunkline.bind_datagram(format_address(ep.address))


# --------------------------------------------------------------------------- errors, timeouts


async def test_recv_timeout() -> None:
    async with await trunkline.bind_datagram("udp://127.0.0.1:0") as ep:
        with pytest.raises(TrunklineTimeoutError) as info:
            await ep.recv(timeout=0.2)
        assert isinstance(info.value, TimeoutError)
        assert "0.2" in str(info.value)


async def test_connected_udp_to_closed_port_is_connect_error() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    async with await trunkline.open_datagram(f"udp://127.0.0.1:{port}") as ep:
        await ep.send(b"anyone?")
        with pytest.raises(ConnectError, match="refused"):
            await ep.recv(timeout=5)  # the ICMP port unreachable, surfaced
        # raised once: the endpoint stays usable (and refused again on the next try)
        await ep.send(b"again")
        with pytest.raises(ConnectError):
            await ep.recv(timeout=5)


async def test_unixgram_to_missing_socket_is_connect_error(short_tmp: Path) -> None:
    with pytest.raises(ConnectError, match="server running"):
        await trunkline.open_datagram(f"unixgram://{short_tmp}/nobody.dgram")


async def test_unixgram_server_gone_is_connect_error_on_send(
        make_url: Callable[[str], str]) -> None:
    server_ep = await trunkline.bind_datagram(make_url("unixgram-abstract"))
    ep = await trunkline.open_datagram(server_ep.address)
    async with ep:
        await server_ep.aclose()
        with pytest.raises(ConnectError):
            await ep.send(b"hello?")


async def test_stream_operations_say_what_to_use_instead() -> None:
    with pytest.raises(UnsupportedError, match="open_datagram"):
        await trunkline.connect("udp://127.0.0.1:9")
    with pytest.raises(UnsupportedError, match="stream address"):
        await trunkline.open_datagram("tcp://127.0.0.1:9")
    with pytest.raises(UnsupportedError, match="stream address"):
        await trunkline.bind_datagram("unix:@x")
    with pytest.raises(UnsupportedError, match="both must be udp or both unixgram"):
        await trunkline.open_datagram("udp://127.0.0.1:9", bind="unixgram:@x")
    async with await trunkline.open_datagram("udp://127.0.0.1:9") as ep:
        with pytest.raises(UnsupportedError, match="half-close"):
            ep.write_eof()
        with pytest.raises(UnsupportedError, match="send\\(data\\)"):
            await ep.send_to(b"x", "udp://127.0.0.1:10")
    with pytest.raises(UnsupportedError, match="SO_PEERCRED"):
        await trunkline.serve(None, "unixgram:@x", datagram_handler=echo,
                              options=ListenOptions(allow_uids=frozenset({0})))


async def test_closed_endpoint() -> None:
    ep = await trunkline.bind_datagram("udp://127.0.0.1:0")
    waiting = asyncio.ensure_future(ep.recv())
    iterated: list[bytes] = []

    async def iterate() -> None:
        async for data, _ in ep:
            iterated.append(data)

    loop_task = asyncio.ensure_future(iterate())
    await asyncio.sleep(0)  # let both start waiting (no readiness involved)
    ep.close()
    with pytest.raises(TransportError, match="closed"):
        await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(loop_task, 5)  # the iteration just ends
    with pytest.raises(TransportError, match="closed"):
        await ep.send_to(b"x", "udp://127.0.0.1:9")
    await ep.wait_closed()


# --------------------------------------------------------------------------- bounded queue


async def _until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (bounded by the caller's timeout)."""
    while not condition():
        await asyncio.sleep(0)


async def test_receive_queue_drops_oldest() -> None:
    async with await trunkline.bind_datagram("udp://127.0.0.1:0", max_queue=8) as ep:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sender:
            for i in range(100):  # loopback delivers during sendto: all 100 are queued in
                sender.sendto(i.to_bytes(2, "big"), (ep.address.host, ep.address.port))
            async with asyncio.timeout(5):
                await _until(lambda: ep.queued + ep.dropped == 100)
        assert (ep.queued, ep.dropped) == (8, 92)
        got = [int.from_bytes((await ep.recv())[0], "big") for _ in range(8)]
        assert got == list(range(92, 100))  # the newest survive


async def test_receive_queue_is_bounded_in_bytes() -> None:
    async with await trunkline.bind_datagram(f"unixgram:@trunkline-test-bytes-{os.getpid()}",
                                             max_queue_bytes=1000) as ep:
        async with await trunkline.open_datagram(ep.address) as sender:
            for i in range(20):
                await sender.send(bytes([i]) * 300)
            async with asyncio.timeout(5):
                await _until(lambda: ep.queued + ep.dropped == 20)
        assert ep.queued == 3 and ep.dropped == 17
        assert [(await ep.recv())[0][0] for _ in range(3)] == [17, 18, 19]


# --------------------------------------------------------------------------- serving


async def test_serve_datagram_listener_and_failing_handler(short_tmp: Path) -> None:
    async def picky(data: bytes, source: Identity) -> bytes | None:
        if data == b"boom":
            raise RuntimeError("handler bug")
        if data == b"quiet":
            return None
        return b"ok " + data

    path = short_tmp / "serve.dgram"
    listener = await serve_datagram(UnixAddress(str(path), datagram=True), picky)
    try:
        assert listener.address == UnixAddress(str(path), datagram=True)
        async with await trunkline.open_datagram(listener.address) as ep:
            for message in (b"boom", b"quiet", b"fine"):
                await ep.send(message)
            assert await ep.recv(timeout=5) == (b"ok fine", ep.peer)
            with pytest.raises(TrunklineTimeoutError):
                await ep.recv(timeout=0.2)  # no reply to the other two
    finally:
        listener.close()
        await listener.wait_closed()
    assert not path.exists()


async def test_serve_mixes_stream_and_datagram_addresses(short_tmp: Path) -> None:
    async def stream_echo(stream: trunkline.Stream) -> None:
        while data := await stream.read():
            await stream.send(data)

    server = await trunkline.serve(stream_echo, "tcp://127.0.0.1:0", "udp://127.0.0.1:0",
                                   datagram_handler=echo)
    async with server:
        tcp_url, udp_url = server.urls
        assert udp_url.startswith("udp://127.0.0.1:") and not udp_url.endswith(":0")
        async with await trunkline.open_datagram(udp_url) as ep:
            await ep.send(b"dgram")
            assert (await ep.recv(timeout=5))[0] == b"dgram"
    async with await trunkline.bind_datagram(udp_url):  # closing released the port
        pass


# --------------------------------------------------------------------------- tracing


async def test_tracer_records_socket_send_receive(make_url: Callable[[str], str]) -> None:
    tracer = Tracer()
    async with echo_server(make_url("udp4")) as url:
        ep: DatagramEndpoint = await trunkline.open_datagram(url, tracer=tracer)
        async with ep:
            await ep.send(b"x" * 64)
            await ep.recv(timeout=5)
    steps = [e.step for e in tracer.events]
    assert steps == [Step.SOCKET, Step.CONNECT, Step.SEND, Step.RECEIVE, Step.CLOSE]
    sizes = {e.step: e.detail.get("bytes") for e in tracer.events}
    assert sizes[Step.SEND] == 64 and sizes[Step.RECEIVE] == 64
    assert tracer.events[0].detail["protocol"] == "udp"


# --------------------------------------------------------------------------- full unixgram queues


def _max_dgram_qlen() -> int:
    with open("/proc/sys/net/unix/max_dgram_qlen") as f:
        return int(f.read())


async def test_unixgram_send_to_a_full_queue_waits_instead_of_dropping(
        short_tmp: Path) -> None:
    total = _max_dgram_qlen() + 10  # more than the receiver's kernel queue holds
    path = str(short_tmp / "slow.dgram")
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # a receiver that reads late
    slow.bind(path)
    slow.settimeout(5)
    with slow:
        async with await trunkline.bind_datagram(f"unixgram://{short_tmp}/fast.dgram") as ep:
            async def send_all() -> None:
                for i in range(total):
                    await ep.send_to(i.to_bytes(2, "big"), f"unixgram://{path}")

            sender = asyncio.ensure_future(send_all())
            loop = asyncio.get_running_loop()
            got = [await loop.run_in_executor(None, slow.recv, 16) for _ in range(total)]
            await asyncio.wait_for(sender, 5)
    assert [int.from_bytes(g, "big") for g in got] == list(range(total))  # none lost, in order


async def test_server_drops_replies_to_a_client_that_does_not_read(
        make_url: Callable[[str], str]) -> None:
    total = _max_dgram_qlen() + 10
    handled = 0

    async def count(data: bytes, source: Identity) -> bytes:
        nonlocal handled
        handled += 1
        return data

    url = make_url("unixgram-abstract")
    listener = await serve_datagram(trunkline.parse_address(url), count)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    client.bind(b"")  # autobind: it has a name, but never reads while we send
    try:
        def blast() -> None:
            for _ in range(total):
                client.sendto(b"r", listener.address.sockaddr)  # type: ignore[union-attr]

        await asyncio.get_running_loop().run_in_executor(None, blast)
        async with asyncio.timeout(5):
            await _until(lambda: handled == total and not listener.protocol.tasks)
        client.setblocking(False)
        replies = 0
        with contextlib.suppress(BlockingIOError):
            while client.recv(16):
                replies += 1
        assert replies + listener.dropped == total
        assert listener.dropped > 0 and replies > 0
        # and the server still answers others at once
        async with await trunkline.open_datagram(url) as ep:
            await ep.send(b"next")
            assert (await ep.recv(timeout=5))[0] == b"next"
    finally:
        client.close()
        listener.close()
        await listener.wait_closed()


async def test_handler_returning_non_bytes_is_logged(make_url: Callable[[str], str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    async def wrong(data: bytes, source: Identity) -> bytes:
        return "text" if data == b"str" else data  # type: ignore[return-value]

    async with echo_server(make_url("udp4"), wrong) as url, \
            await trunkline.open_datagram(url) as ep:
        await ep.send(b"str")
        await ep.send(b"bytes")
        assert (await ep.recv(timeout=5))[0] == b"bytes"
    assert "must return bytes" in caplog.text


async def test_serve_with_tracer_records_each_exchange() -> None:
    tracer = Tracer()
    server = await trunkline.serve(None, "udp://127.0.0.1:0", datagram_handler=echo,
                                   tracer=tracer)
    async with server, await trunkline.open_datagram(server.urls[0]) as ep:
        await ep.send(b"abc")
        await ep.recv(timeout=5)
    served = [(e.step, e.detail.get("bytes")) for e in tracer.events if e.side == "server"]
    assert served == [(Step.SOCKET, None), (Step.RECEIVE, 3), (Step.SEND, 3)]


async def test_timed_out_receives_leave_nothing_behind() -> None:
    async with await trunkline.bind_datagram("udp://127.0.0.1:0") as ep:
        for _ in range(3):
            with pytest.raises(TrunklineTimeoutError):
                await ep.recv(timeout=0.01)
        assert ep._protocol.waiters == []
