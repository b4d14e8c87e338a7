"""One datagram peer that never reads its replies must not stall replies to the others
(issue 10.3), across users: the hog runs as ``nobody``, the clients as root.

A unixgram datagram stays charged to its sender's send buffer until the receiver reads it,
so before the per-peer budget a hog sending 60 KB datagrams filled the server's buffer in
four replies and every other client's echo timed out. UDP is checked the same way: there a
reply waits in the receiver's buffer, not ours, so the kernel drops what the hog leaves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import trunkline
from second_user import needs_root, stdlib_as_nobody
from trunkline import ListenOptions
from trunkline.address import Identity, parse_address
from trunkline.transport.datagram import DatagramListener, serve_datagram

pytestmark = [needs_root, pytest.mark.timeout(90),
              pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])]

HOG_SENDS = 60  # 60 KB each: far more than any send buffer holds in unread replies
CLIENTS, ROUNDS = 3, 20
ECHO_TIMEOUT = 2.0

HOG = """\
import socket, sys, time
family = socket.AF_INET if sys.argv[1] == "udp" else socket.AF_UNIX
s = socket.socket(family, socket.SOCK_DGRAM)
if family == socket.AF_INET:
    target = ("127.0.0.1", int(sys.argv[2]))
    s.bind(("127.0.0.1", 0))
else:
    target = sys.argv[2].encode() if sys.argv[2].startswith("/") else b"\\0" + sys.argv[2].encode()
    s.bind("")  # autobind: replies can reach it; it never reads them
s.connect(target)
s.setblocking(False)
sent = 0
while sent < int(sys.argv[3]):
    try:
        s.send(b"h" * 60000)
        sent += 1
    except BlockingIOError:  # the server's receive queue is full: it is busy replying
        time.sleep(0.001)
print("hogging", sent, flush=True)
sys.stdin.read()  # hold the unread replies until the test ends
"""


async def echo(data: bytes, source: Identity) -> bytes:
    return data


@asynccontextmanager
async def hog(kind: str, target: str) -> AsyncIterator[None]:
    """A peer running as nobody that sends big datagrams and never reads the replies."""
    proc = await asyncio.create_subprocess_exec(
        *stdlib_as_nobody(HOG, kind, target, str(HOG_SENDS)), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line == b"hogging %d\n" % HOG_SENDS, (line, await proc.stderr.read())  # type: ignore[union-attr]
        yield
    finally:
        proc.kill()
        await proc.wait()


async def _clients_get_every_echo(url: str) -> None:
    async def client(n: int) -> None:
        async with await trunkline.open_datagram(url) as ep:
            for i in range(ROUNDS):
                payload = b"client %d round %d" % (n, i)
                await ep.send(payload)
                data, _ = await ep.recv(timeout=ECHO_TIMEOUT)
                assert data == payload

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))


@asynccontextmanager
async def server(url: str) -> AsyncIterator[DatagramListener]:
    listener = await serve_datagram(parse_address(url), echo, ListenOptions(mode=0o666))
    try:
        yield listener
    finally:
        listener.close()
        await listener.wait_closed()


@pytest.mark.parametrize("where", ["path", "abstract"])
async def test_unixgram_hog_does_not_stall_other_clients(
        short_tmp: Path, where: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "trunkline.server")
    if where == "path":
        os.chmod(short_tmp, 0o755)  # nobody must reach the socket (mode 0666) inside
        target = str(short_tmp / "echo.dgram")
        url = f"unixgram://{target}"
    else:
        target = f"tl-hog-{os.urandom(4).hex()}"
        url = f"unixgram:@{target}"
    async with server(url) as listener, hog("unix", target):
        await _clients_get_every_echo(url)
        assert listener.dropped_replies > 0  # the hog's, not ours: we got every echo
        assert listener.dropped_requests == 0
    drops = [r.getMessage() for r in caplog.records if "dropped a reply" in r.getMessage()]
    assert len(drops) == 1, drops  # rate-limited: one line for many drops
    assert "not reading" in drops[0] and url in drops[0]


async def test_udp_hog_does_not_stall_other_clients() -> None:
    async with server("udp://127.0.0.1:0") as listener:
        port = listener.address.port  # type: ignore[union-attr]
        async with hog("udp", str(port)):
            await _clients_get_every_echo(f"udp://127.0.0.1:{port}")
