"""FIFO rendezvous: junk written to it never costs a real client its connection (issue 10.4).

Anyone who may write the rendezvous FIFO can write anything to it. A client's announcement
is one atomic write (at most PIPE_BUF bytes, ending in a newline), so it always arrives in one
piece, but possibly right after someone else's unterminated junk: the server must find it by
its prefix instead of discarding the line it landed in.
"""

from __future__ import annotations

import asyncio
import os
import random
import select
import threading
from pathlib import Path

import pytest

import trunkline
from trunkline import Stream

pytestmark = [pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"]),
              pytest.mark.timeout(60)]

CONNECT_TIMEOUT = 5.0  # the server answers at once; the old failure was waiting this out


async def echo(stream: Stream) -> None:
    async for chunk in stream:
        await stream.send(chunk)


async def _round_trip(url: str, payload: bytes) -> None:
    async with await trunkline.connect(url, timeout=CONNECT_TIMEOUT) as stream:
        await stream.send(payload)
        assert await stream.readexactly(len(payload)) == payload


def _write_all(fd: int, data: bytes) -> None:
    """Blocking writes of at most PIPE_BUF bytes each, as a hostile writer might."""
    for start in range(0, len(data), select.PIPE_BUF):
        os.write(fd, data[start:start + select.PIPE_BUF])


@pytest.mark.parametrize("junk", [
    b"trunkline-fifo 1 12345",  # half an announcement: its writer died mid-way
    b"trunkline-fifo 1 12345 /tmp/trunkline-0-0-x",
    b"trunkline-fi",
    b"x" * 5000,  # over 4 KiB without a newline
    b"y" * 70_000 + b"trunkline-fifo 1",
    b"\xff\x00" * 3000 + b"trunkline-fifo 1 1 /nowhere",
], ids=["half-hello", "hello-without-newline", "half-magic", "5k-junk", "70k-junk-then-magic",
        "binary-then-bogus-hello"])
async def test_unterminated_junk_does_not_cost_the_next_client(tmp_path: Path,
                                                               junk: bytes) -> None:
    url = f"fifo://{tmp_path}/rv"
    async with await trunkline.serve(echo, url):
        writer = os.open(tmp_path / "rv", os.O_WRONLY)
        try:
            await asyncio.to_thread(_write_all, writer, junk)
            await _round_trip(url, b"first after the junk")
            await _round_trip(url, b"and the one after")
        finally:
            os.close(writer)


async def test_junk_writer_racing_real_clients(tmp_path: Path) -> None:
    url = f"fifo://{tmp_path}/rv"
    pieces = [b"trunkline-fifo 1 ", b"trunkline-fifo 1 999 /tmp/trunkline-", b"trunk",
              b"z" * 4000, b"\n", b"trunkline-fifo 1 1 /\n", bytes(range(256)).replace(b"\n", b"")]
    stop = threading.Event()

    def junk_writer(fd: int) -> None:
        rng = random.Random(1)
        while not stop.is_set():
            data = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
            try:
                _write_all(fd, data)
            except BlockingIOError:
                stop.wait(0.001)  # the server is behind: let it catch up

    async with await trunkline.serve(echo, url):
        writer = os.open(tmp_path / "rv", os.O_WRONLY | os.O_NONBLOCK)
        thread = threading.Thread(target=junk_writer, args=(writer,), daemon=True)
        thread.start()
        try:
            for round_ in range(5):
                await asyncio.gather(*(_round_trip(url, b"client %d.%d" % (round_, n))
                                       for n in range(8)))
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 10)
            os.close(writer)
