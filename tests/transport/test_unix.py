"""Unix socket hygiene: never steal, reclaim stale, keep non-sockets, modes, owners, peers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest

import trunkline
from trunkline import ListenOptions, Stream
from trunkline.address import PeerCredentials, UnixIdentity
from trunkline.errors import AddressInUseError, NotASocketError, TransportError

BOTH_LOOPS = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])


async def echo(stream: Stream) -> None:
    while data := await stream.read():
        await stream.send(data)


async def roundtrip(url: str, payload: bytes = b"ping") -> bytes:
    async with await trunkline.connect(url, timeout=5) as stream:
        await stream.send(payload)
        stream.write_eof()
        return b"".join([chunk async for chunk in stream])


# --------------------------------------------------------------------------- address in use


async def test_live_socket_is_not_stolen(short_tmp: Path) -> None:
    path = short_tmp / "live.sock"
    url = f"unix://{path}"
    async with await trunkline.serve(echo, url):
        inode = path.stat().st_ino
        with pytest.raises(AddressInUseError) as info:
            await trunkline.serve(echo, url)
        assert str(path) in str(info.value)
        assert path.stat().st_ino == inode  # the file was left alone
        assert await roundtrip(url) == b"ping"  # and the first server still answers


async def test_live_abstract_name_is_not_stolen() -> None:
    url = f"unix:@trunkline-test-{os.getpid()}-inuse"
    async with await trunkline.serve(echo, url):
        with pytest.raises(AddressInUseError) as info:
            await trunkline.serve(echo, url)
        assert "inuse" in str(info.value)
        assert await roundtrip(url) == b"ping"


async def test_stale_socket_file_is_reclaimed(short_tmp: Path) -> None:
    path = short_tmp / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays behind, nobody listens
    assert stat.S_ISSOCK(path.lstat().st_mode)
    async with await trunkline.serve(echo, f"unix://{path}"):
        assert await roundtrip(f"unix://{path}") == b"ping"


@pytest.mark.parametrize("kind", ["file", "directory", "symlink"])
async def test_non_socket_file_is_kept(short_tmp: Path, kind: str) -> None:
    path = short_tmp / "precious"
    if kind == "file":
        path.write_bytes(b"do not delete")
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(short_tmp / "elsewhere")
    with pytest.raises(NotASocketError) as info:
        await trunkline.serve(echo, f"unix://{path}")
    assert str(path) in str(info.value)
    assert os.path.lexists(path)
    if kind == "file":
        assert path.read_bytes() == b"do not delete"


async def test_missing_directory_is_a_clear_error(short_tmp: Path) -> None:
    path = short_tmp / "no" / "such" / "dir.sock"
    with pytest.raises(TransportError) as info:
        await trunkline.serve(echo, f"unix://{path}")
    assert str(path) in str(info.value)


async def test_relative_path_is_relative_to_cwd(short_tmp: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(short_tmp)
    async with await trunkline.serve(echo, "unix:rel.sock"):
        assert stat.S_ISSOCK((short_tmp / "rel.sock").lstat().st_mode)
        assert await roundtrip("unix:rel.sock") == b"ping"
    assert not (short_tmp / "rel.sock").exists()


# --------------------------------------------------------------------------- file mode and owner


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("mode", [None, 0o660, 0o666, 0o700])
async def test_mode_is_applied_with_no_window(short_tmp: Path, mode: int | None) -> None:
    """The file's mode is right from the moment it exists: a watcher thread polling the path
    while we bind, many times over (under umask 0, so a bind without the umask step would
    show 0o777), never sees any other mode."""
    path = short_tmp / "mode.sock"
    url = f"unix://{path}"
    expected = 0o600 if mode is None else mode
    options = ListenOptions() if mode is None else ListenOptions(mode=mode)
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                seen.add(_mode(path))

    old_umask = os.umask(0)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(50):
            server = await trunkline.serve(echo, url, options=options)
            assert _mode(path) == expected  # right when serve returns
            await server.aclose()
    finally:
        stop.set()
        watcher.join()
        sys.setswitchinterval(old_interval)
        os.umask(old_umask)
    assert seen <= {expected}
    async with await trunkline.serve(echo, url, options=options):
        assert await roundtrip(url) == b"ping"


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


@needs_root
@pytest.mark.parametrize("by_name", [True, False])
async def test_owner_and_group_are_applied(short_tmp: Path, by_name: bool) -> None:
    nobody = pwd.getpwnam("nobody")
    owner: int | str = "nobody" if by_name else nobody.pw_uid
    group: int | str = nobody.pw_gid
    path = short_tmp / "owned.sock"
    options = ListenOptions(mode=0o660, owner=owner, group=group)
    async with await trunkline.serve(echo, f"unix://{path}", options=options):
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
        assert stat.S_IMODE(st.st_mode) == 0o660


# --------------------------------------------------------------------------- peers

CLIENT = """
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"who")
s.shutdown(socket.SHUT_WR)
sys.stdout.write(s.recv(100).decode())
"""


@BOTH_LOOPS
async def test_peer_credentials_are_the_client_process(short_tmp: Path) -> None:
    path = short_tmp / "creds.sock"
    seen: list[PeerCredentials | None] = []

    async def handler(stream: Stream) -> None:
        seen.append(stream.peer_credentials)
        await stream.read()
        await stream.send(b"ok")

    async with await trunkline.serve(handler, f"unix://{path}"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, str(path), stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        assert out == b"ok"
        assert seen == [PeerCredentials(proc.pid, os.getuid(), os.getgid())]
        assert proc.pid != os.getpid()
        # The client side sees the server process.
        async with await trunkline.connect(f"unix://{path}") as stream:
            assert stream.peer_credentials == PeerCredentials(os.getpid(), os.getuid(),
                                                              os.getgid())
            assert stream.peer == UnixIdentity(str(path))
            assert stream.local == UnixIdentity("")


def _admit_urls(short_tmp: Path) -> list[str]:
    return [f"unix://{short_tmp / 'admit.sock'}", f"unix:@trunkline-admit-{os.getpid()}"]


@BOTH_LOOPS
@pytest.mark.parametrize("which", ["path", "abstract"])
async def test_peer_not_on_admit_list_never_reaches_handler(short_tmp: Path, which: str) -> None:
    url = _admit_urls(short_tmp)[which == "abstract"]
    handled = 0

    async def handler(stream: Stream) -> None:
        nonlocal handled
        handled += 1
        await echo(stream)

    stranger = os.getuid() + 4242
    refused = ListenOptions(allow_uids=frozenset({stranger}), allow_gids=frozenset({stranger}))
    async with (await trunkline.serve(handler, url, options=refused),
                await trunkline.connect(url) as stream):
        stream.write(b"let me in")
        assert await stream.read() == b""  # closed without an answer
    assert handled == 0

    for admitted in (ListenOptions(allow_uids=frozenset({stranger, os.getuid()})),
                     ListenOptions(allow_gids=frozenset({os.getgid()}))):
        async with await trunkline.serve(handler, url, options=admitted):
            assert await roundtrip(url) == b"ping"
    assert handled == 2


# --------------------------------------------------------------------------- closing


@BOTH_LOOPS
async def test_socket_file_is_unlinked_on_close(short_tmp: Path) -> None:
    path = short_tmp / "bye.sock"
    server = await trunkline.serve(echo, f"unix://{path}")
    assert stat.S_ISSOCK(path.lstat().st_mode)
    await server.aclose()
    assert not os.path.lexists(path)
    # and the path is free for the next server straight away
    async with await trunkline.serve(echo, f"unix://{path}"):
        assert await roundtrip(f"unix://{path}") == b"ping"


async def test_successor_socket_file_survives_predecessor_close(short_tmp: Path) -> None:
    path = short_tmp / "handover.sock"
    url = f"unix://{path}"
    first = await trunkline.serve(echo, url)
    os.unlink(path)  # e.g. a deploy moved the old server aside
    async with await trunkline.serve(echo, url):
        successor_inode = path.lstat().st_ino
        await first.aclose()
        assert path.lstat().st_ino == successor_inode
        assert await roundtrip(url) == b"ping"
