"""One datagram peer that never reads its replies must not stall replies to the others
(issue 10.3), across users: the hog runs as ``nobody``, the clients as root.

A unixgram datagram stays charged to its sender's send buffer until the receiver reads it,
so before the per-peer budget a hog sending 60 KB datagrams filled the server's buffer in
four replies and every other client's echo timed out. UDP is checked the same way: there a
reply waits in the receiver's buffer, not ours, so the kernel drops what the hog leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import trunkline
from tests.support.second_user import needs_root, stdlib_as_nobody
from trunkline import ListenOptions
from trunkline.address import Identity, parse_address
from trunkline.aio.datagram_server import DatagramListener, serve_datagram
from trunkline.errors import TrunklineTimeoutError

pytestmark = [needs_root, pytest.mark.timeout(90),
              pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])]

HOG_SENDS = 60  # 60 KB each: far more than any send buffer holds in unread replies
CLIENTS, ROUNDS = 3, 20
ECHO_TIMEOUT = 2.0

HOG = """\
import socket, sys, time
family = socket.AF_INET if sys.argv[1] == "udp" else socket.AF_UNIX
if family == socket.AF_INET:
    target = ("127.0.0.1", int(sys.argv[2]))
else:
    target = sys.argv[2].encode() if sys.argv[2].startswith("/") else b"\\0" + sys.argv[2].encode()
sockets = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(int(sys.argv[4]))]
for s in sockets:  # one hog, or several sockets of one hostile user
    s.bind(("127.0.0.1", 0) if family == socket.AF_INET else "")  # replies can reach it
    s.connect(target)
    s.setblocking(False)
sent = 0
while sent < int(sys.argv[3]):
    try:
        sockets[sent % len(sockets)].send(b"h" * 60000)
        sent += 1
    except BlockingIOError:  # the server's receive queue is full: it is busy replying
        time.sleep(0.001)
print("hogging", sent, flush=True)
sys.stdin.read()  # hold the unread replies until the test ends
"""


async def echo(data: bytes, source: Identity) -> bytes:
    return data


@asynccontextmanager
async def hog(kind: str, target: str, sockets: int = 1) -> AsyncIterator[None]:
    """A peer running as nobody that sends big datagrams and never reads the replies."""
    proc = await asyncio.create_subprocess_exec(
        *stdlib_as_nobody(HOG, kind, target, str(HOG_SENDS), str(sockets)), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line == b"hogging %d\n" % HOG_SENDS, (line, await proc.stderr.read())  # type: ignore[union-attr]
        yield
    finally:
        proc.kill()
        await proc.wait()


async def _clients_get_every_echo(url: str, size: int = 0) -> None:
    async def client(n: int) -> None:
        async with await trunkline.open_datagram(url) as ep:
            for i in range(ROUNDS):
                payload = b"client %d round %d " % (n, i) + b"." * size
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


@pytest.mark.parametrize(("sockets", "size"), [(1, 60000), (3, 0), (3, 30000)],
                         ids=["big-echoes", "three-hog-sockets", "three-hog-sockets-big-echoes"])
async def test_unixgram_clients_with_big_echoes_or_several_hogs(
        sockets: int, size: int) -> None:
    # Big replies need a look at the peer's queue nearly every time (sock_diag); several
    # non-reading sockets each hold at most their budget, and clients that read still get
    # every reply. (Budgets are per socket: enough sockets of one user, each holding a big
    # reply, can still fill the buffer; see README.)
    target = f"tl-hog-{os.urandom(4).hex()}"
    url = f"unixgram:@{target}"
    async with server(url) as listener, hog("unix", target, sockets):
        await _clients_get_every_echo(url, size)
        assert listener.dropped_replies > 0


async def test_a_peer_that_reads_again_gets_replies_again() -> None:
    url = f"unixgram:@tl-hog-{os.urandom(4).hex()}"
    async with server(url) as listener, await trunkline.open_datagram(url) as late:
        sent = 0
        while listener.dropped_replies == 0:  # send until the server drops one of ours
            await late.send(b"l" * 60000)
            sent += 1
            assert sent < 1000
            await asyncio.sleep(0)  # let the server handle it
        received = 0
        with contextlib.suppress(TrunklineTimeoutError):
            while True:
                await late.recv(timeout=0.5)
                received += 1
        assert 0 < received < sent
        await late.send(b"and now?")  # it has read everything: its budget is whole again
        assert (await late.recv(timeout=ECHO_TIMEOUT))[0] == b"and now?"
