"""Handlers that run inside the read callback behave as they did in a task of their own.

- Datagram handler calls run eagerly with a stand-in task (``_loop.eager``): the current
  task, ``asyncio.timeout``, ``TaskGroup``, contexts, concurrency, cancellation on close.
- A stream reader resumes inside the read callback (``_loop.resume``): its own task and
  context, cancellation, ``wait_for``; and every way of reading returns the bytes in order
  whatever the chunking (reads handed out as they came, or copied).

Real sockets and FIFOs, both event loops."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

import trunkline
from trunkline import ConnectOptions, ListenOptions
from trunkline._loop.eager import EagerRunner
from trunkline.address import Identity
from trunkline.aio.stream import Stream

pytestmark = [pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"]), pytest.mark.timeout(30)]

DatagramHandler = Callable[[bytes, Identity], Awaitable[bytes | None]]
var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def _dgram_urls(short_tmp: Path) -> list[str]:
    return ["udp://127.0.0.1:0", f"unixgram://{short_tmp}/e.dgram",
            f"unixgram:@trunkline-eager-{os.getpid()}-{id(short_tmp)}"]


async def _exchange(handler: DatagramHandler, url: str, *messages: bytes) -> list[bytes]:
    """Serve ``handler`` on ``url``; send each message from its own client, all at once."""
    async with await trunkline.serve(None, url, datagram_handler=handler) as server:
        async def one(message: bytes) -> bytes:
            async with await trunkline.open_datagram(server.urls[0]) as ep:
                await ep.send(message)
                return (await ep.recv(timeout=10))[0]

        return list(await asyncio.gather(*(one(m) for m in messages)))


@pytest.mark.parametrize("index", [0, 1, 2], ids=["udp", "unixgram-path", "unixgram-abstract"])
async def test_datagram_handler_has_a_task_and_a_working_timeout(short_tmp: Path,
                                                                index: int) -> None:
    tasks: list[asyncio.Task[object] | None] = []

    async def handler(data: bytes, source: Identity) -> bytes:
        tasks.append(asyncio.current_task())
        if data == b"wait":
            try:
                async with asyncio.timeout(0.05):
                    await asyncio.Event().wait()
            except TimeoutError:
                return b"timed out"
        return data

    url = _dgram_urls(short_tmp)[index]
    assert await _exchange(handler, url, b"now") == [b"now"]
    assert await _exchange(handler, url, b"wait") == [b"timed out"]
    assert all(task is not None for task in tasks)


async def test_waiting_datagram_handlers_run_concurrently() -> None:
    second_seen = asyncio.Event()

    async def handler(data: bytes, source: Identity) -> bytes:
        if data == b"first":
            await second_seen.wait()  # only the second call can release it
        else:
            second_seen.set()
        return data

    server = await trunkline.serve(None, "udp://127.0.0.1:0", datagram_handler=handler)
    async with server, await trunkline.open_datagram(server.urls[0]) as a, \
            await trunkline.open_datagram(server.urls[0]) as b:
        await a.send(b"first")
        await b.send(b"second")
        assert (await b.recv(timeout=10))[0] == b"second"
        assert (await a.recv(timeout=10))[0] == b"first"


async def test_each_datagram_handler_call_sees_a_fresh_context() -> None:
    token = var.set("base")  # the serving code's context: each call starts from a copy
    try:
        async def handler(data: bytes, source: Identity) -> bytes:
            seen = var.get()
            var.set(data.decode())
            if data == b"c":
                await asyncio.sleep(0)
                assert var.get() == "c"  # kept across its own awaits
            return seen.encode()

        for _ in range(2):  # sequential calls: each must see "base", not a previous value
            assert await _exchange(handler, "udp://127.0.0.1:0", b"a") == [b"base"]
        server = await trunkline.serve(None, "udp://127.0.0.1:0", datagram_handler=handler)
        async with server, await trunkline.open_datagram(server.urls[0]) as ep:
            for message in (b"a", b"b", b"c", b"d"):
                await ep.send(message)
                assert (await ep.recv(timeout=10))[0] == b"base"
    finally:
        var.reset(token)


async def test_datagram_handler_task_group_bare_yield_and_self_cancel() -> None:
    cancelled = asyncio.Event()

    async def double(data: bytes) -> bytes:
        await asyncio.sleep(0)
        return data * 2

    async def handler(data: bytes, source: Identity) -> bytes | None:
        if data == b"cancel-me":
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return b"not cancelled"
        async with asyncio.TaskGroup() as group:
            child = group.create_task(double(data))
        await asyncio.sleep(0)
        return child.result()

    server = await trunkline.serve(None, "udp://127.0.0.1:0", datagram_handler=handler)
    async with server, await trunkline.open_datagram(server.urls[0]) as ep:
        await ep.send(b"cancel-me")
        await asyncio.wait_for(cancelled.wait(), 10)
        await ep.send(b"ab")
        assert (await ep.recv(timeout=10))[0] == b"abab"  # and no reply to the cancelled one


async def test_closing_cancels_waiting_datagram_handlers() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def handler(data: bytes, source: Identity) -> bytes:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return data

    server = await trunkline.serve(None, "udp://127.0.0.1:0", datagram_handler=handler)
    async with await trunkline.open_datagram(server.urls[0]) as ep:
        await ep.send(b"x")
        await asyncio.wait_for(started.wait(), 10)
        await server.aclose()
    assert cancelled.is_set()


async def test_eager_runner_called_from_a_task_gives_the_call_its_own_task() -> None:
    runner = EagerRunner(asyncio.get_running_loop())
    runner.start()
    await asyncio.sleep(0)  # the stand-in is ready now
    seen: list[asyncio.Task[object] | None] = []

    async def call() -> None:
        seen.append(asyncio.current_task())

    runner.run(call())  # from this test's task: a stand-in cannot be entered here
    await asyncio.gather(*runner.tasks)
    assert seen and seen[0] is not None and seen[0] is not asyncio.current_task()
    runner.close()
    await runner.wait_closed()


# --------------------------------------------------------------------------- streams

STREAM_KINDS = ["tcp", "unix", "fifo", "tls"]  # tls: the buffered protocol (get_buffer) path


@pytest.fixture(scope="module")
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@contextlib.asynccontextmanager
async def _connected(kind: str, short_tmp: Path, tls: tuple[ssl.SSLContext, ssl.SSLContext],
                     handler: Callable[[Stream], Awaitable[None]],
                     limit: int = 1024 * 1024) -> AsyncIterator[Stream]:
    """A client stream to a server of ``kind`` running ``handler``."""
    url = {"tcp": "tcp://127.0.0.1:0", "unix": f"unix://{short_tmp}/s.sock",
           "fifo": f"fifo://{short_tmp}/s.fifo", "tls": "tls://127.0.0.1:0"}[kind]
    listen = ListenOptions(ssl=tls[0]) if kind == "tls" else ListenOptions()
    async with await trunkline.serve(handler, url, options=listen) as server:
        connect = ConnectOptions(ssl=tls[1]) if kind == "tls" else ConnectOptions()
        async with await trunkline.connect(server.urls[0], options=connect,
                                           limit=limit) as stream:
            yield stream


@pytest.mark.parametrize("kind", STREAM_KINDS)
async def test_stream_reader_keeps_its_task_and_context(
        short_tmp: Path, kind: str, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
        ) -> None:
    problems: list[str] = []

    async def handler(stream: Stream) -> None:
        task = asyncio.current_task()
        var.set("handler")
        while data := await stream.read():
            if asyncio.current_task() is not task or var.get() != "handler":
                problems.append(f"after read: {asyncio.current_task()} {var.get()}")
            await stream.send(data)

    async with _connected(kind, short_tmp, tls_contexts, handler) as stream:
        for i in range(50):
            await stream.send(b"%d" % i)
            assert await stream.readexactly(len(b"%d" % i)) == b"%d" % i
    assert problems == []


@pytest.mark.parametrize("kind", STREAM_KINDS)
async def test_stream_cancelled_read_and_wait_for_lose_nothing(
        short_tmp: Path, kind: str, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
        ) -> None:
    peer_ready: asyncio.Queue[Stream] = asyncio.Queue()

    async def handler(stream: Stream) -> None:
        await peer_ready.put(stream)
        await stream.wait_closed()

    async with _connected(kind, short_tmp, tls_contexts, handler) as stream:
        peer = await asyncio.wait_for(peer_ready.get(), 10)
        reader = asyncio.ensure_future(stream.read())
        await asyncio.sleep(0)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await peer.send(b"one")
        assert await stream.read() == b"one"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stream.read(), 0.01)
        await peer.send(b"two")
        assert await asyncio.wait_for(stream.read(), 10) == b"two"
        peer.close()


@pytest.mark.parametrize("kind", STREAM_KINDS)
async def test_stream_reads_return_the_bytes_in_order_whatever_the_chunking(
        short_tmp: Path, kind: str, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
        ) -> None:
    seed = STREAM_KINDS.index(kind)
    rng, send_rng = random.Random(seed), random.Random(seed + 100)
    payload = bytes(rng.randrange(256) for _ in range(60_000)).replace(b"\n", b"n")
    payload = b"\n".join(payload[i:i + rng.randrange(1, 3000)]
                         for i in range(0, len(payload), 2000))

    async def handler(stream: Stream) -> None:
        view, pos = memoryview(payload), 0
        while pos < len(payload):
            n = send_rng.choice([1, 7, 64, 500, 4096, 20_000])
            await stream.send(view[pos:pos + n])
            pos += n
            if send_rng.random() < 0.3:
                await asyncio.sleep(0)  # let some chunks arrive alone, others together
        if stream.can_write_eof():  # (TLS cannot half-close)
            stream.write_eof()
        while await stream.read():  # until the client closes
            pass

    async with _connected(kind, short_tmp, tls_contexts, handler, limit=8192) as stream:
        got = bytearray()
        while len(got) < len(payload):
            op, left = rng.randrange(3), len(payload) - len(got)
            if op == 0:
                chunk = await stream.read(rng.choice([1, 100, 5000, 65536]))
            elif op == 1 or payload.find(b"\n", len(got)) < 0:
                chunk = await stream.readexactly(min(rng.choice([1, 64, 3000, 10_000]), left))
            else:
                chunk = await stream.readuntil(b"\n")
            assert chunk
            got += chunk
        if kind != "tls":
            assert await stream.read() == b""
            assert stream.at_eof
    assert bytes(got) == payload


async def test_returns_none_is_true_only_when_the_bytecode_shows_none() -> None:
    from trunkline._loop.eager import returns_none

    async def bare(flag: bool) -> None:
        if flag:
            return
        await asyncio.sleep(0)

    async def explicit(flag: bool) -> None:
        if flag:
            return None
        return None

    async def value(flag: bool) -> int:
        return 1

    async def chosen(flag: bool) -> int | None:
        return 1 if flag else None  # (the RETURN_VALUE is a jump target after LOAD_CONST)

    async def awaited(flag: bool) -> object:
        return await asyncio.sleep(0)

    async def local(flag: bool) -> object:
        x = None
        return x

    class App:
        async def __call__(self) -> None:
            pass

    class Valued:
        async def __call__(self) -> int:
            return 1

    def plain() -> None:
        pass

    assert returns_none(bare) and returns_none(explicit)
    assert returns_none(App()) and returns_none(App().__call__)
    for other in (value, chosen, awaited, local, Valued(), plain, None, 1, App):
        assert not returns_none(other), other
