"""The service host, and every server built on it run through the same checks.

Each server class (``AppServer``, ``EchoServer``, ``trunkline.serve``'s ``Server``, ``Relay``)
is one ``Kind``: how to start it on some addresses and how to hold a conversation with it
("work in flight": a streamed HTTP request whose app echoes each body chunk, or a byte
echo, directly or through the relay). The checks: binding rolls back, urls are the bound
addresses, a stop drains work in flight and aborts it after the grace, close is idempotent,
serve_forever returns after request_shutdown, the lifecycle hooks run after binding and
before draining. Real sockets throughout; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import trunkline
from trunkline.aio.datagram_server import datagram_endpoint
from trunkline.apps.echo_service import EchoServer, echo_bytes, echo_datagram
from trunkline.errors import AddressInUseError, TransportError
from trunkline.host import HostedServer, ServiceHost, stream_endpoint
from trunkline.relay import start_relay
from trunkline.server import AppServer, ServerConfig
from trunkline.transport import listen

BOUND = 10  # seconds any one wait may take before the test fails


# --------------------------------------------------------------------------- conversations


async def chunk_echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Streams each request body chunk back as it comes; "done" after the body's end."""
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if message.get("body"):
            await send({"type": "http.response.body", "body": message["body"],
                        "more_body": True})
        if not message.get("more_body"):
            break
    await send({"type": "http.response.body", "body": b"done"})


class Work:
    """A conversation in flight with a server: ``open`` it (served: the first exchange came
    back), ``exchange`` once more, ``end`` it cleanly, or see it ``cut``."""

    def __init__(self, stream: trunkline.Stream) -> None:
        self.stream = stream
        self.received = bytearray()

    async def _until(self, token: bytes) -> None:
        async with asyncio.timeout(BOUND):
            while token not in self.received:
                chunk = await self.stream.read()
                assert chunk, f"closed before {token!r} came back: {bytes(self.received)!r}"
                self.received += chunk

    async def _rest(self) -> bytes:
        """Everything until the server closes (a reset counts as a close)."""
        rest = bytearray()
        async with asyncio.timeout(BOUND):
            with contextlib.suppress(ConnectionError, TransportError):
                while chunk := await self.stream.read():
                    rest += chunk
        return bytes(rest)

    async def exchange(self, token: bytes) -> None:
        raise NotImplementedError

    async def end(self) -> None:
        raise NotImplementedError

    async def cut(self) -> None:
        """The server cut the conversation: it closes without finishing it."""
        rest = await self._rest()
        assert b"done" not in rest and b"late" not in rest
        self.stream.close()


class ByteWork(Work):
    @classmethod
    async def open(cls, url: str) -> ByteWork:
        work = cls(await trunkline.connect(url, timeout=BOUND))
        await work.exchange(b"ping")
        return work

    async def exchange(self, token: bytes) -> None:
        self.stream.write(token)
        await self._until(token)

    async def end(self) -> None:
        self.stream.write(b"late")
        self.stream.write_eof()  # the echo sends the rest, then its EOF
        assert await self._rest() == b"late"
        self.stream.close()


class HttpWork(Work):
    @classmethod
    async def open(cls, url: str) -> HttpWork:
        work = cls(await trunkline.connect(url, timeout=BOUND))
        work.stream.write(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        await work.exchange(b"ping")
        assert work.received.startswith(b"HTTP/1.1 200 ")
        return work

    async def exchange(self, token: bytes) -> None:
        self.stream.write(b"%x\r\n%s\r\n" % (len(token), token))
        await self._until(token)

    async def end(self) -> None:
        self.stream.write(b"0\r\n\r\n")
        await self._until(b"done\r\n0\r\n\r\n")  # the response's last chunk
        self.stream.close()


# --------------------------------------------------------------------------- the servers

Make = Callable[..., Awaitable[HostedServer]]


class Kind:
    """One server class: ``make(*urls, hooks=...)`` starts it; ``work`` opens a
    conversation with it."""

    def __init__(self, name: str, make: Make, work: Callable[[str], Awaitable[Work]]) -> None:
        self.name = name
        self.make = make
        self.work = work

    def __repr__(self) -> str:
        return self.name


async def make_app(*urls: str, **kw: Any) -> HostedServer:
    config = ServerConfig(lifespan="off", access_log=False)
    return await AppServer(chunk_echo_app, *urls, config=config, **kw).start()


async def make_echo(*urls: str, **kw: Any) -> HostedServer:
    config = ServerConfig(access_log=False)
    return await EchoServer(*urls, config=config, sniff_timeout=BOUND, **kw).start()


async def make_serve(*urls: str, **kw: Any) -> HostedServer:
    return await trunkline.serve(echo_bytes, *urls, **kw)


@contextlib.asynccontextmanager
async def relay_kind() -> AsyncIterator[Kind]:
    """The relay, in front of a byte echo (``trunkline.serve``) it relays to."""
    async with await trunkline.serve(echo_bytes, "tcp://127.0.0.1:0") as target:
        async def make_relay(*urls: str, **kw: Any) -> HostedServer:
            return await start_relay(urls, target.urls[0], **kw)

        yield Kind("relay", make_relay, ByteWork.open)
        await target.aclose(grace=0)


@pytest.fixture(params=["app", "echo", "serve", "relay"])
async def kind(request: pytest.FixtureRequest) -> AsyncIterator[Kind]:
    name = request.param
    if name == "relay":
        async with relay_kind() as relay:
            yield relay
        return
    yield {"app": Kind("app", make_app, HttpWork.open),
           "echo": Kind("echo", make_echo, ByteWork.open),
           "serve": Kind("serve", make_serve, ByteWork.open)}[name]


@pytest.fixture
def held_port() -> Iterator[int]:
    """A TCP port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def refused(url: str) -> bool:
    try:
        stream = await trunkline.connect(url, timeout=BOUND)
    except (TransportError, OSError):
        return True
    stream.close()
    return False


def registry_empty(server: HostedServer) -> bool:
    connections = server.host.connections
    return not connections.live and all(task.done() for task in connections.tasks)


# --------------------------------------------------------------------------- conformance


async def test_bind_rollback_releases_what_was_bound(kind: Kind, short_tmp: Path,
                                                     held_port: int) -> None:
    first = f"unix://{short_tmp}/first.sock"
    with pytest.raises(AddressInUseError):
        await kind.make(first, f"tcp://127.0.0.1:{held_port}")
    assert not (short_tmp / "first.sock").exists()  # closed and unlinked
    server = await kind.make(first)  # the address is free again
    try:
        work = await kind.work(server.urls[0])
        await work.exchange(b"again")
        work.stream.close()
    finally:
        await server.aclose(grace=0)


async def test_urls_are_the_bound_addresses(kind: Kind, short_tmp: Path) -> None:
    server = await kind.make("tcp://127.0.0.1:0", f"unix://{short_tmp}/s.sock")
    try:
        tcp, unix = server.urls
        match = re.fullmatch(r"tcp://127\.0\.0\.1:(\d+)", tcp)
        assert match and int(match.group(1)) != 0
        assert unix == f"unix://{short_tmp}/s.sock"
        for url in (tcp, unix):  # each is really served
            work = await kind.work(url)
            await work.end()
    finally:
        await server.aclose(grace=0)
    assert not (short_tmp / "s.sock").exists()


async def test_stop_drains_work_in_flight(kind: Kind) -> None:
    server = await kind.make("tcp://127.0.0.1:0")
    url = server.urls[0]
    work = await kind.work(url)
    server.close()
    stopping = asyncio.create_task(server.wait_closed(grace=60))
    assert await refused(url)  # no new connections...
    await work.exchange(b"more")  # ...while the one in flight is still served
    assert not stopping.done()
    await work.end()
    await asyncio.wait_for(stopping, BOUND)
    assert registry_empty(server)


async def test_stop_aborts_what_is_left_after_the_grace(kind: Kind) -> None:
    server = await kind.make("tcp://127.0.0.1:0")
    work = await kind.work(server.urls[0])
    await asyncio.wait_for(server.aclose(grace=0.2), BOUND)
    await work.cut()
    assert registry_empty(server)


async def test_close_is_idempotent(kind: Kind) -> None:
    server = await kind.make("tcp://127.0.0.1:0")
    work = await kind.work(server.urls[0])
    server.close()
    server.close()
    first = asyncio.create_task(server.wait_closed(grace=60))
    second = asyncio.create_task(server.aclose(grace=0))  # waits for the first stop
    await work.exchange(b"more")
    assert not first.done() and not second.done()
    await work.end()
    await asyncio.wait_for(asyncio.gather(first, second), BOUND)
    server.close()
    await asyncio.wait_for(server.aclose(), BOUND)  # stopped already: returns at once
    assert registry_empty(server)


async def test_serve_forever_returns_after_request_shutdown(kind: Kind) -> None:
    server = await kind.make("tcp://127.0.0.1:0")
    url = server.urls[0]
    serving = asyncio.create_task(server.serve_forever())
    work = await kind.work(url)
    await work.end()
    assert not serving.done()
    server.request_shutdown()
    await asyncio.wait_for(serving, BOUND)
    assert await refused(url)


async def test_hooks_run_after_binding_and_before_draining(kind: Kind) -> None:
    """A fake name registration (a list) as a hook: registered with the bound urls once
    every address is bound, deregistered when stopping begins, while the listeners still
    accept and before connections in flight are asked to finish."""
    registered: list[str] = []
    seen: list[tuple[str, Any]] = []

    @contextlib.asynccontextmanager
    async def register(host: ServiceHost) -> AsyncIterator[None]:
        registered.extend(host.urls)
        seen.append(("registered", list(host.urls)))
        yield
        accepting = not await refused(host.urls[0])
        seen.append(("deregistered", (accepting, host.connections.draining)))
        registered.clear()

    server = await kind.make("tcp://127.0.0.1:0", hooks=[register])
    assert registered == server.urls and not server.urls[0].endswith(":0")
    work = await kind.work(server.urls[0])
    stopping = asyncio.create_task(server.aclose(grace=60))
    await work.exchange(b"more")
    await work.end()
    await asyncio.wait_for(stopping, BOUND)
    assert seen == [("registered", server.urls), ("deregistered", (True, False))]
    assert registered == []


# --------------------------------------------------------------------------- the host alone


class Ping(asyncio.Protocol):
    """The smallest connection a host can hold: answers "pong", closes on shutdown."""

    def __init__(self, host: ServiceHost) -> None:
        self.host = host
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.host.connections.add(self)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(b"pong")

    def connection_lost(self, exc: Exception | None) -> None:
        self.host.connections.forget(self)

    def shutdown(self) -> None:
        assert self.transport is not None
        self.transport.close()

    def abort(self) -> None:
        assert self.transport is not None
        self.transport.abort()


def ping_host(*urls: str, **kw: Any) -> ServiceHost:
    host = ServiceHost(**kw)
    host.endpoints = [stream_endpoint(trunkline.parse_address(u), lambda: Ping(host))
                      for u in urls]
    return host


async def test_binding_is_separate_from_the_hooks(short_tmp: Path) -> None:
    """``bind`` binds only; ``start`` then enters the hooks (a worker parent binds first)."""
    entered: list[list[str]] = []

    @contextlib.asynccontextmanager
    async def hook(host: ServiceHost) -> AsyncIterator[None]:
        entered.append(host.urls)
        yield

    host = ping_host("tcp://127.0.0.1:0", f"unix://{short_tmp}/p.sock", hooks=[hook])
    await host.bind()
    assert entered == [] and len(host.urls) == 2
    async with host:
        assert entered == [host.urls]
        stream = await trunkline.connect(host.urls[1], timeout=BOUND)
        stream.write(b"ping")
        assert await asyncio.wait_for(stream.readexactly(4), BOUND) == b"pong"
        stream.close()


async def test_listeners_bound_elsewhere_are_served_and_closed() -> None:
    """``Server(listeners)``: the host serves (and on stop closes) listeners it did not bind."""
    holder: list[ServiceHost] = []
    listener = await listen(trunkline.parse_address("tcp://127.0.0.1:0"),
                            lambda: Ping(holder[0]))
    server = trunkline.Server([listener])
    holder.append(server.host)
    async with server:
        url = server.urls[0]
        stream = await trunkline.connect(url, timeout=BOUND)
        stream.write(b"ping")
        assert await asyncio.wait_for(stream.readexactly(4), BOUND) == b"pong"
        stream.close()
    assert await refused(url)


async def test_a_failing_hook_unwinds_the_ones_entered_and_the_listeners(short_tmp: Path
                                                                         ) -> None:
    registered: list[str] = []

    @contextlib.asynccontextmanager
    async def register(host: ServiceHost) -> AsyncIterator[None]:
        registered.extend(host.urls)
        try:
            yield
        finally:
            registered.clear()

    @contextlib.asynccontextmanager
    async def broken(host: ServiceHost) -> AsyncIterator[None]:
        raise RuntimeError("no workers today")
        yield

    host = ping_host(f"unix://{short_tmp}/h.sock", hooks=[register, broken])
    with pytest.raises(RuntimeError, match="no workers today"):
        await host.start()
    assert registered == [] and not (short_tmp / "h.sock").exists()


async def test_datagram_endpoints_roll_back_too(short_tmp: Path, held_port: int) -> None:
    host = ServiceHost([
        datagram_endpoint(trunkline.parse_address(f"unixgram://{short_tmp}/d.sock"),
                          echo_datagram),
        stream_endpoint(trunkline.parse_address(f"tcp://127.0.0.1:{held_port}"),
                        asyncio.Protocol)])
    with pytest.raises(AddressInUseError):
        await host.start()
    assert not (short_tmp / "d.sock").exists()


async def test_abort_cuts_at_once_during_a_long_grace() -> None:
    """What a second signal does: a stop waiting out a long grace ends now."""
    server = await make_serve("tcp://127.0.0.1:0")
    work = await ByteWork.open(server.urls[0])
    stopping = asyncio.create_task(server.aclose(grace=3600))
    await work.exchange(b"more")
    server.abort()
    await asyncio.wait_for(stopping, BOUND)
    await work.cut()
    assert registry_empty(server)


@pytest.mark.parametrize("released", [True, False])
async def test_app_work_after_its_response_counts_in_the_drain(released: bool) -> None:
    """An ASGI call that goes on after its response (background work) is in the host's task
    set: a stop waits for it, and cancels it when the grace is over."""
    release = asyncio.Event()
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        try:
            await release.wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("finished")

    server = await AppServer(app, "tcp://127.0.0.1:0",
                             config=ServerConfig(lifespan="off", access_log=False)).start()
    stream = await trunkline.connect(server.urls[0], timeout=BOUND)
    stream.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await asyncio.wait_for(stream.readuntil(b"\r\n\r\n"), BOUND)).startswith(
        b"HTTP/1.1 200 ")
    assert await asyncio.wait_for(stream.readexactly(2), BOUND) == b"ok"
    assert len(server.host.connections.tasks) == 1
    stopping = asyncio.create_task(server.aclose(grace=60 if released else 0.2))
    assert await asyncio.wait_for(stream.read(), BOUND) == b""  # the idle connection closed
    stream.close()
    if released:
        assert not stopping.done()  # the app is still at work
        release.set()
    await asyncio.wait_for(stopping, BOUND)
    assert seen == (["finished"] if released else ["cancelled"])
    assert registry_empty(server)
