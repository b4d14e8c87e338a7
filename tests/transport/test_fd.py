"""Inherited sockets: systemd socket activation in a real child process, fd://N in-process,
and every way a descriptor can be wrong."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import trunkline
from trunkline import FdAddress, ListenOptions, Stream
from trunkline.address import PeerCredentials, SocketIdentity, UnixIdentity
from trunkline.errors import (
    AddressInUseError,
    ConnectError,
    NotASocketError,
    TransportError,
    UnsupportedError,
)
from trunkline.transport.fd import ActivatedFd, resolve_fd, systemd_fds

BOTH_LOOPS = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])


async def echo(stream: Stream) -> None:
    while data := await stream.read():
        await stream.send(data)


async def roundtrip(url: str, payload: bytes = b"ping") -> bytes:
    async with await trunkline.connect(url, timeout=5) as stream:
        await stream.send(payload)
        stream.write_eof()
        return b"".join([chunk async for chunk in stream])


# --------------------------------------------------------------------------- systemd activation

# Puts the passed sockets at 3 and 4 the way systemd does, then execs the server, so
# LISTEN_PID (set here, like `sh -c 'LISTEN_PID=$$ exec ...'`) is the server's own pid.
WRAPPER = """
import os, sys
first, second, wrong_pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
os.dup2(first, 3)
os.dup2(second, 4)
os.close(first)
os.close(second)
os.environ["LISTEN_PID"] = "1" if wrong_pid else str(os.getpid())
os.execv(sys.executable, [sys.executable, "-c", sys.argv[4]])
"""

SERVER = """
import asyncio, json, os, sys
import trunkline
from trunkline._loop import run

async def handler(stream):
    data = await stream.read()
    await stream.send(data + b" from " + str(os.getpid()).encode())

async def main():
    try:
        server = await trunkline.serve(handler, "fd://web", "fd://admin")
    except trunkline.TrunklineError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return
    async with server:
        print(json.dumps({"pid": os.getpid(), "urls": server.urls,
                          "local": [str(l.local) for l in server.listeners]}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

run(main())
"""


def _high_dup(sock: socket.socket) -> int:
    """A copy of the socket at fd >= 10, clear of the 3 and 4 the child must end up with."""
    return fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD, 10)


@pytest.fixture
async def activated(short_tmp: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process,
                                                            dict[str, object], int, Path]]:
    """A server process started with a TCP socket (named web) and a Unix socket (named admin)
    passed by socket activation; yields (process, its readiness line, tcp port, unix path)."""
    tcp = socket.create_server(("127.0.0.1", 0))
    unix_path = short_tmp / "admin.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(unix_path))
    unix.listen()
    port = tcp.getsockname()[1]
    fds = [_high_dup(tcp), _high_dup(unix)]
    tcp.close()
    unix.close()
    env = {**os.environ, "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:admin"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRAPPER, str(fds[0]), str(fds[1]), "0", SERVER,
        pass_fds=fds, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    for fd in fds:
        os.close(fd)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        yield proc, json.loads(line), port, unix_path
    finally:
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_systemd_activation_serves_named_sockets(
        activated: tuple[asyncio.subprocess.Process, dict[str, object], int, Path]) -> None:
    proc, ready, port, unix_path = activated
    assert ready["pid"] == proc.pid  # exec kept the pid, so LISTEN_PID matched
    assert ready["urls"] == ["fd://web", "fd://admin"]
    assert ready["local"] == [str(SocketIdentity("127.0.0.1", port, "tcp")),
                              str(UnixIdentity(str(unix_path)))]
    reply = f" from {proc.pid}".encode()
    assert await roundtrip(f"tcp://127.0.0.1:{port}", b"hello") == b"hello" + reply
    async with await trunkline.connect(f"unix://{unix_path}") as stream:
        assert stream.peer_credentials == PeerCredentials(proc.pid, os.getuid(), os.getgid())
        await stream.send(b"admin")
        assert await stream.read() == b"admin" + reply


async def test_systemd_activation_for_another_pid_is_refused(short_tmp: Path) -> None:
    a, b = socket.socket(), socket.socket()
    fds = [_high_dup(a), _high_dup(b)]
    a.close()
    b.close()
    env = {**os.environ, "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:admin"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRAPPER, str(fds[0]), str(fds[1]), "1", SERVER,
        pass_fds=fds, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE)
    for fd in fds:
        os.close(fd)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    error = json.loads(out)["error"]
    assert "LISTEN_PID=1" in error and str(proc.pid) in error


# --------------------------------------------------------------------------- systemd_fds


def test_systemd_fds_reads_the_environment() -> None:
    env = {"LISTEN_FDS": "3", "LISTEN_PID": "42", "LISTEN_FDNAMES": "web:admin:web"}
    assert systemd_fds(env, pid=42) == [ActivatedFd(3, "web"), ActivatedFd(4, "admin"),
                                        ActivatedFd(5, "web")]
    assert systemd_fds({"LISTEN_FDS": "1", "LISTEN_PID": "7"}, pid=7) == [
        ActivatedFd(3, "unknown")]
    assert systemd_fds({}, pid=1) == []


@pytest.mark.parametrize(("env", "fragment"), [
    ({"LISTEN_FDS": "1", "LISTEN_PID": "41"}, "LISTEN_PID=41 is not our pid 42"),
    ({"LISTEN_FDS": "1"}, "LISTEN_PID is not"),
    ({"LISTEN_FDS": "two", "LISTEN_PID": "42"}, "LISTEN_FDS='two'"),
    ({"LISTEN_FDS": "2", "LISTEN_PID": "42", "LISTEN_FDNAMES": "web"}, "must match"),
])
def test_systemd_fds_rejects_bad_environments(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(TransportError) as info:
        systemd_fds(env, pid=42)
    assert fragment in str(info.value)


def test_named_fd_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"LISTEN_FDS": "3", "LISTEN_PID": str(os.getpid()),
           "LISTEN_FDNAMES": "web:admin:web"}
    assert resolve_fd(FdAddress(name="admin"), env) == 4
    assert resolve_fd(FdAddress(fd=9), env) == 9
    with pytest.raises(TransportError) as info:
        resolve_fd(FdAddress(name="metrics"), env)
    assert "'metrics'" in str(info.value)
    assert "web (fd 3), admin (fd 4), web (fd 5)" in str(info.value)
    with pytest.raises(TransportError) as info:
        resolve_fd(FdAddress(name="web"), env)
    assert "fd://3 fd://5" in str(info.value)
    with pytest.raises(TransportError) as info:
        resolve_fd(FdAddress(name="web"), {})
    assert "LISTEN_FDS is not set" in str(info.value)


# --------------------------------------------------------------------------- fd://N in-process


@BOTH_LOOPS
async def test_serve_inherited_unix_socket_with_admit_list(short_tmp: Path) -> None:
    path = short_tmp / "inh.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen()
    url = f"fd://{sock.detach()}"
    stranger = frozenset({os.getuid() + 4242})
    async with await trunkline.serve(echo, url, options=ListenOptions(allow_uids=stranger)), \
            await trunkline.connect(f"unix://{path}") as stream:
        stream.write(b"x")
        assert await stream.read() == b""
    sock = socket.socket(socket.AF_UNIX)
    os.unlink(path)
    sock.bind(str(path))
    sock.listen()
    async with await trunkline.serve(echo, f"fd://{sock.detach()}") as server:
        assert server.listeners[0].local == UnixIdentity(str(path))  # type: ignore[attr-defined]
        assert await roundtrip(f"unix://{path}") == b"ping"


async def test_bound_but_not_listening_socket_is_served() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    async with await trunkline.serve(echo, f"fd://{sock.detach()}"):
        assert await roundtrip(f"tcp://127.0.0.1:{port}") == b"ping"


@BOTH_LOOPS
@pytest.mark.parametrize("family", [socket.AF_UNIX, socket.AF_INET])
async def test_connect_over_inherited_connected_socket(family: socket.AddressFamily) -> None:
    if family == socket.AF_UNIX:
        ours, theirs = socket.socketpair()
    else:
        with socket.create_server(("127.0.0.1", 0)) as server:
            ours = socket.create_connection(server.getsockname())
            theirs, _ = server.accept()
    with theirs:
        async with await trunkline.connect(f"fd://{ours.detach()}") as stream:
            await stream.send(b"over an inherited socket")
            assert theirs.recv(100) == b"over an inherited socket"
            theirs.sendall(b"reply")
            theirs.shutdown(socket.SHUT_WR)
            assert b"".join([chunk async for chunk in stream]) == b"reply"
            if family == socket.AF_UNIX:
                assert stream.peer_credentials == PeerCredentials(os.getpid(), os.getuid(),
                                                                  os.getgid())
            else:
                assert stream.peer == SocketIdentity(*theirs.getsockname()[:2], "tcp")


# --------------------------------------------------------------------------- wrong descriptors


async def test_listening_socket_given_to_connect() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        with pytest.raises(UnsupportedError) as info:
            await trunkline.connect(f"fd://{sock.fileno()}")
        assert "listening socket" in str(info.value)
        sock.getsockname()  # still ours, still open


async def test_connected_socket_given_to_serve() -> None:
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(UnsupportedError) as info:
            await trunkline.serve(echo, f"fd://{a.fileno()}")
        assert "connected socket" in str(info.value)
        a.getsockname()


async def test_unbound_socket_given_to_serve_or_connect() -> None:
    with socket.socket() as sock:
        with pytest.raises(UnsupportedError) as info:
            await trunkline.serve(echo, f"fd://{sock.fileno()}")
        assert "not bound" in str(info.value)
        with pytest.raises(ConnectError) as cinfo:
            await trunkline.connect(f"fd://{sock.fileno()}")
        assert "not connected" in str(cinfo.value)


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_UNIX])
async def test_datagram_socket_is_refused(family: socket.AddressFamily) -> None:
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for attempt in (lambda: trunkline.serve(echo, f"fd://{sock.fileno()}"),
                        lambda: trunkline.connect(f"fd://{sock.fileno()}")):
            with pytest.raises(UnsupportedError) as info:
                await attempt()
            assert "datagram" in str(info.value)
        sock.getsockname()  # left open for its owner


async def test_pipe_is_not_a_socket() -> None:
    r, w = os.pipe()
    try:
        for attempt in (lambda: trunkline.serve(echo, f"fd://{r}"),
                        lambda: trunkline.connect(f"fd://{r}")):
            with pytest.raises(NotASocketError) as info:
                await attempt()
            assert "pipe" in str(info.value)
        os.fstat(r)
    finally:
        os.close(r)
        os.close(w)


async def test_descriptor_not_open() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)  # a number that is surely not open now
    with pytest.raises(TransportError) as info:
        await trunkline.serve(echo, f"fd://{fd}")
    assert "not open" in str(info.value)
    with pytest.raises(ConnectError):
        await trunkline.connect(f"fd://{fd}")


async def test_one_descriptor_one_listener() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    url = f"fd://{sock.detach()}"
    async with await trunkline.serve(echo, url):
        with pytest.raises(AddressInUseError):
            await trunkline.serve(echo, url)
        assert await roundtrip(f"tcp://127.0.0.1:{port}") == b"ping"
    # The listener owned the descriptor: closing it released the port.
    with socket.create_server(("127.0.0.1", port)):
        pass
