"""The client reads an answer that came while it was still sending the body (a 413 sent
before the upload was read, then a close with the body unread: the kernel answers our next
write with RST or EPIPE). Issue 13 point 3, at the library level."""

from __future__ import annotations

import asyncio
import socket

import pytest

import trunkline
from tests.support.raw_peers import ScriptedServer, read_head

BIG = b"z" * (2 * 1024 * 1024)


def _early_413(conn: socket.socket) -> None:
    read_head(conn)
    conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n"
                 b"Connection: close\r\n\r\ntoo large")


async def _parts() -> object:
    for start in range(0, len(BIG), 256 * 1024):
        yield BIG[start:start + 256 * 1024]
        await asyncio.sleep(0)


@pytest.mark.parametrize("body", ["bytes", "stream"])
async def test_early_413_is_the_answer_every_time(body: str) -> None:
    with ScriptedServer(_early_413) as server:
        async with trunkline.Client() as client:
            for _ in range(20):
                content = BIG if body == "bytes" else _parts()
                response = await client.post(server.http + "/up", content=content)  # type: ignore[arg-type]
                assert (response.status_code, response.content) == (413, b"too large")
    assert not server.errors
