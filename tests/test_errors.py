"""What callers catch: every failure surfaces as a ``trunkline.errors`` class with a message
that says what went wrong and how to fix it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

import trunkline
from trunkline import ListenOptions, Stream
from trunkline.errors import (
    AddressError,
    AddressInUseError,
    ConnectError,
    HandshakeError,
    PathTooLongError,
    TransportError,
    TrunklineError,
    UnsupportedError,
)


async def echo(stream: Stream) -> None:
    while data := await stream.read():
        await stream.send(data)


def closed_port(family: socket.AddressFamily, host: str) -> int:
    """A port that was just free on ``host``: bound, then closed, so a connect is refused."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
    return port


# --------------------------------------------------------------------------- connect failures


async def test_tcp_closed_port_is_connect_error() -> None:
    port = closed_port(socket.AF_INET, "127.0.0.1")
    with pytest.raises(ConnectError) as info:
        await trunkline.connect(f"tcp://127.0.0.1:{port}", timeout=5)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert isinstance(info.value, OSError) and isinstance(info.value, TrunklineError)


async def test_tcp6_closed_port_is_connect_error() -> None:
    try:
        port = closed_port(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    with pytest.raises(ConnectError):
        await trunkline.connect(f"tcp://[::1]:{port}", timeout=5)


async def test_unix_missing_path_is_connect_error(short_tmp: Path) -> None:
    path = short_tmp / "nobody-home.sock"
    with pytest.raises(ConnectError) as info:
        await trunkline.connect(f"unix://{path}", timeout=5)
    assert str(path) in str(info.value)


async def test_unix_stale_socket_file_is_connect_error(short_tmp: Path) -> None:
    path = short_tmp / "stale.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))
    with pytest.raises(ConnectError):
        await trunkline.connect(f"unix://{path}", timeout=5)


async def test_unix_abstract_missing_name_is_connect_error() -> None:
    with pytest.raises(ConnectError) as info:
        await trunkline.connect(f"unix:@trunkline-missing-{os.getpid()}", timeout=5)
    assert "trunkline-missing" in str(info.value)


async def test_unix_path_to_regular_file_is_connect_error(short_tmp: Path) -> None:
    path = short_tmp / "file"
    path.write_text("not a socket")
    with pytest.raises(ConnectError):
        await trunkline.connect(f"unix://{path}", timeout=5)


# --------------------------------------------------------------------------- bad addresses

BAD_URLS = [
    "", "localhost:80", "tcp://127.0.0.1", "tcp://127.0.0.1:99999", "tcp://::1:80",
    "tls://localhost", "udp://127.0.0.1", "unix:", "unix://relative", "unix:@",
    "unixgram:", "fifo:@x", "fd://", "fd://-3", "svc://bad name", "gopher://x:1",
    "http://127.0.0.1:8000/",
]


@pytest.mark.parametrize("url", BAD_URLS)
async def test_bad_address_fails_before_any_socket(url: str) -> None:
    with pytest.raises(AddressError) as info:
        await trunkline.connect(url)
    assert "example" in str(info.value)
    with pytest.raises(AddressError):
        await trunkline.serve(echo, url)


@pytest.mark.parametrize("url", ["unix:///" + "x" * 120, "unix:@" + "x" * 120,
                                 "unixgram:///" + "y" * 120])
async def test_path_too_long(url: str) -> None:
    with pytest.raises(PathTooLongError):
        await trunkline.connect(url)
    with pytest.raises(PathTooLongError):
        await trunkline.serve(echo, url, datagram_handler=None)


# --------------------------------------------------------------------------- misuse


async def test_datagram_address_to_connect_is_unsupported() -> None:
    with pytest.raises(UnsupportedError) as info:
        await trunkline.connect("udp://127.0.0.1:9")
    assert "open_datagram" in str(info.value)


async def test_serve_needs_the_right_handler() -> None:
    with pytest.raises(UnsupportedError):
        await trunkline.serve(echo)
    with pytest.raises(UnsupportedError) as info:
        await trunkline.serve(echo, "udp://127.0.0.1:0")
    assert "datagram_handler" in str(info.value)
    with pytest.raises(UnsupportedError):
        await trunkline.serve(None, "tcp://127.0.0.1:0")


async def test_tls_listen_without_certificate() -> None:
    with pytest.raises(HandshakeError) as info:
        await trunkline.serve(echo, "tls://127.0.0.1:0")
    assert "certificate" in str(info.value)


async def test_service_names_need_a_registry() -> None:
    with pytest.raises(TrunklineError):
        await trunkline.connect("svc://nowhere-registered", timeout=5)


# --------------------------------------------------------------------------- address in use


async def test_tcp_port_in_use() -> None:
    async with await trunkline.serve(echo, "tcp://127.0.0.1:0") as server:
        url = server.urls[0]
        with pytest.raises(AddressInUseError) as info:
            await trunkline.serve(echo, url)
        assert url.removeprefix("tcp://") in str(info.value)


async def test_failed_serve_releases_what_it_bound(short_tmp: Path) -> None:
    """serve() on several addresses where a later one fails leaves nothing bound."""
    path = short_tmp / "first.sock"
    blocker = short_tmp / "blocker"
    blocker.write_text("x")
    with pytest.raises(TransportError):
        await trunkline.serve(echo, f"unix://{path}", f"unix://{blocker}")
    assert not path.exists()
    async with await trunkline.serve(echo, f"unix://{path}"):
        pass


@pytest.mark.parametrize("options", [ListenOptions(owner="no-such-user-trunkline"),
                                     ListenOptions(group="no-such-group-trunkline")])
async def test_unknown_owner_or_group_is_a_clear_error(short_tmp: Path,
                                                       options: ListenOptions) -> None:
    with pytest.raises(TransportError) as info:
        await trunkline.serve(echo, f"unix://{short_tmp / 'o.sock'}", options=options)
    assert "no-such-" in str(info.value)
    assert not (short_tmp / "o.sock").exists()  # nothing left behind


# --------------------------------------------------------------------------- the tree


def test_error_tree() -> None:
    assert issubclass(AddressError, ValueError)
    assert issubclass(PathTooLongError, AddressError)
    for cls in (ConnectError, AddressInUseError, HandshakeError):
        assert issubclass(cls, TransportError) and issubclass(cls, OSError)
    assert issubclass(trunkline.errors.TrunklineTimeoutError, TimeoutError)
    # a close ends a conversation normally: not the kernel's error (only the ASGI send's is
    # an OSError, as the ASGI spec asks)
    closed = trunkline.errors.WebSocketClosed
    assert issubclass(closed, trunkline.errors.TrunklineError)
    assert not issubclass(closed, TransportError) and not issubclass(closed, OSError)
    asgi = trunkline.errors.AsgiWebSocketClosed
    assert issubclass(asgi, closed) and issubclass(asgi, OSError)
