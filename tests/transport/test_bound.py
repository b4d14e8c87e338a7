"""Sockets bound apart from serving (``transport.bound``): what the ``--workers`` supervisor
binds once, and how a worker serves what it inherited. In one process here; the forked
workers are in tests/test_workers.py and tests/cli/test_cli_serve_workers.py."""

from __future__ import annotations

import os
import socket
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import trunkline
from trunkline import ListenOptions, Stream
from trunkline.address import FifoAddress, TcpAddress, UdpAddress, UnixAddress, parse_address
from trunkline.errors import AddressInUseError, UnsupportedError
from trunkline.transport import bound

BOTH_LOOPS = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])


@pytest.fixture(autouse=True)
def no_inherited() -> Iterator[None]:
    yield
    bound.inherit([])  # leave no inherited socket to the next test


async def echo(stream: Stream) -> None:
    while data := await stream.read():
        await stream.send(data)


async def test_tcp_port_0_is_resolved_and_connections_queue_before_serving() -> None:
    shared = await bound.bind_listening(parse_address("tcp://127.0.0.1:0"))
    try:
        assert isinstance(shared.address, TcpAddress) and shared.address.port != 0
        # listening already: the kernel completes the handshake though nobody serves yet
        with socket.create_connection(("127.0.0.1", shared.address.port), timeout=5):
            pass
    finally:
        shared.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", shared.address.port), timeout=5)


async def test_unix_path_keeps_the_hygiene_and_the_binder_removes_the_file(
        short_tmp: Path) -> None:
    path = short_tmp / "app.sock"
    shared = await bound.bind_listening(UnixAddress(str(path)), ListenOptions(mode=0o640))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    with pytest.raises(AddressInUseError):  # never stolen while it lives
        await bound.bind_listening(UnixAddress(str(path)))
    shared.close()
    assert not path.exists()


@BOTH_LOOPS
@pytest.mark.parametrize("kind", ["tcp", "unix", "abstract"])
async def test_an_inherited_socket_is_served_under_its_bound_address(
        kind: str, short_tmp: Path) -> None:
    url = {"tcp": "tcp://127.0.0.1:0", "unix": f"unix://{short_tmp / 'w.sock'}",
           "abstract": f"unix:@trunkline-test-{uuid.uuid4().hex[:12]}"}[kind]
    [shared] = await bound.bind_all([parse_address(url)])
    bound.inherit([shared])  # as a worker does after the fork
    server = await trunkline.serve(echo, shared.address)
    try:
        assert server.addresses == [shared.address]
        async with await trunkline.connect(shared.address, timeout=5) as stream:
            await stream.send(b"ping")
            assert await stream.readexactly(4) == b"ping"
    finally:
        await server.aclose()
    assert bound.take_inherited(shared.address) is None  # the listener took it
    if kind == "unix":
        assert (short_tmp / "w.sock").exists()  # a worker never removes the binder's file
    shared.close()
    assert not (short_tmp / "w.sock").exists()


async def test_bind_all_releases_what_it_bound_when_one_fails(short_tmp: Path) -> None:
    taken = await bound.bind_listening(UnixAddress(str(short_tmp / "taken.sock")))
    try:
        with pytest.raises(AddressInUseError):
            await bound.bind_all([UnixAddress(str(short_tmp / "first.sock")), taken.address])
        assert not (short_tmp / "first.sock").exists()
    finally:
        taken.close()


@pytest.mark.parametrize("address", [FifoAddress("/tmp/x.fifo"), UdpAddress("127.0.0.1", 9),
                                     UnixAddress("/tmp/x.sock", datagram=True)])
async def test_kinds_one_process_must_own_are_not_shared(address: object) -> None:
    assert not bound.can_share(address)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedError, match="cannot be shared between processes"):
        await bound.bind_listening(address)  # type: ignore[arg-type]
