"""``trunkline relay``'s socat/websocat habits, each through the real command and, where
socat has the same relay, side by side with socat on the same traffic: datagram relays with
a session per source, ``-`` (stdin/stdout) on either side, ``exec:``/``system:`` targets, the
``-v``/``-x`` traffic dump, WebSocket <-> stream bridges both ways, socat/websocat syntax
hints."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import websockets

from tests.support.cli_helpers import TRUNKLINE, Service, run

DEADLINE = 20.0


def _tcp(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    return host, int(port)


def _exchange(connect: socket.socket, data: bytes) -> bytes:
    """Send ``data``, half-close, read until the peer closes."""
    with connect as s:
        s.settimeout(DEADLINE)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(1 << 16):
            chunks.append(chunk)
    return b"".join(chunks)


def _unix(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(DEADLINE)
    s.connect(str(path))
    return s


@contextmanager
def socat(*args: str, ready: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """socat with ``args``; ``ready``: the socket file it listens on (waited for by
    connecting, with a deadline)."""
    proc = subprocess.Popen(["socat", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        if ready is not None:
            _wait_for_socket(ready, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(DEADLINE)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _wait_for_socket(path: Path, proc: subprocess.Popen[bytes]) -> None:
    import time

    deadline = time.monotonic() + DEADLINE
    while not path.exists():  # socat prints no readiness line: its socket file is the sign
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert time.monotonic() < deadline, f"socat never bound {path}"
        time.sleep(0.01)


# ----------------------------------------------------------------------------- datagrams

def _unixgram_client(path: Path, name: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path.parent / name))  # a bound sender: replies can reach it
    s.settimeout(DEADLINE)
    s.connect(str(path))
    return s


def _two_sources(path: Path) -> list[bytes]:
    a, b = _unixgram_client(path, "a.c"), _unixgram_client(path, "b.c")
    with a, b:
        a.send(b"from a 1")
        b.send(b"from b 1")
        a.send(b"from a 2")
        return [a.recv(100), b.recv(100), a.recv(100)]


def test_unixgram_to_udp_routes_replies_per_source_like_socat(short_tmp: Path) -> None:
    with Service(["serve", "echo", "--on", "udp://127.0.0.1:0"]) as echo:
        (udp,) = echo.wait_ready()
        ours = short_tmp / "ours.sock"
        with Service(["relay", f"unixgram://{ours}", udp]) as relay:
            relay.wait_ready()
            got = _two_sources(ours)
            assert relay.stop() == 0
        assert not ours.exists()
        theirs = short_tmp / "theirs.sock"
        for name in ("a.c", "b.c"):
            (short_tmp / name).unlink()
        with socat(f"UNIX-RECVFROM:{theirs},fork", f"UDP-SENDTO:{udp.removeprefix('udp://')}",
                   ready=theirs):
            socat_got = _two_sources(theirs)
    assert got == [b"from a 1", b"from b 1", b"from a 2"]  # each reply to its source
    # socat forks per datagram here, so one source's replies may swap: same set, per source
    assert sorted(got) == sorted(socat_got) and socat_got[1] == b"from b 1"


def test_udp_to_unixgram_and_udp_to_udp_sessions_end_when_idle(short_tmp: Path) -> None:
    target = short_tmp / "echo.sock"
    with Service(["serve", "echo", "--on", f"unixgram://{target}"]) as echo:
        echo.wait_ready()
        with Service(["relay", "udp://127.0.0.1:0", f"unixgram://{target}",
                      "--idle-timeout", "0.3"]) as first, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as two:
            (udp,) = first.wait_ready()
            with Service(["relay", "udp://127.0.0.1:0", udp]) as second:  # udp -> udp
                (front,) = second.wait_ready()
                for s in (one, two):
                    s.settimeout(DEADLINE)
                    s.connect(_tcp(front.replace("udp://", "tcp://")))
                one.send(b"one")
                two.send(b"two" * 1000)  # never split or joined
                assert (one.recv(5000), two.recv(5000)) == (b"one", b"two" * 1000)
                # both sessions idle out together: their lines come in either order
                closed = {first.wait_for_line(r"session \d+ closed: .* 1 datagrams "
                                              r"\((\d+) bytes\) up").group(1)
                          for _ in range(2)}
                assert closed == {"3", "3000"}
                one.send(b"again")  # a new session on the first relay: still answered
                assert one.recv(100) == b"again"
                assert second.stop() == 0
            assert first.stop() == 0


def test_datagram_and_stream_do_not_mix() -> None:
    result = run(["relay", "udp://127.0.0.1:0", "tcp://127.0.0.1:9"])
    assert result.returncode == 3
    assert b"is a datagram address and the other side is a stream" in result.stderr


# ----------------------------------------------------------------------------- stdio

def test_dash_as_listen_dials_once_like_socat(short_tmp: Path) -> None:
    data = os.urandom(300_000)
    with Service(["serve", "echo", "--on", f"unix://{short_tmp / 'e.sock'}"]) as echo:
        (url,) = echo.wait_ready()
        ours = run(["relay", "-", url], input=data)
        theirs = subprocess.run(["socat", "-", f"UNIX-CONNECT:{short_tmp / 'e.sock'}"],
                                input=data, capture_output=True, timeout=DEADLINE, check=False)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (0, data)


@pytest.mark.parametrize("peer", ["trunkline", "socat"])
def test_dash_as_target_serves_one_client_then_exits(peer: str, short_tmp: Path) -> None:
    path = short_tmp / f"{peer}.sock"
    if peer == "trunkline":
        cmd = [*TRUNKLINE, "relay", f"unix://{path}", "stdio:"]
    else:
        cmd = ["socat", f"UNIX-LISTEN:{path}", "-"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        _wait_for_socket(path, proc)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"to the client\n")
        proc.stdin.close()
        reply = _exchange(_unix(path), b"from the client\n")
        assert proc.stdout.read() == b"from the client\n"
        assert reply == b"to the client\n"
        assert proc.wait(DEADLINE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(DEADLINE)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_socat_stdio_spelling_gets_a_hint() -> None:
    result = run(["relay", "STDIN", "tcp://127.0.0.1:9"])  # socat's; STDIO is taken as -
    assert result.returncode == 3
    assert b"did you mean - (stdin/stdout)?" in result.stderr


# ----------------------------------------------------------------------------- exec

@pytest.mark.parametrize("command", ["exec:tr a-z A-Z", "system:tr a-z A-Z | rev"])
def test_exec_target_runs_a_command_per_client_like_socat(command: str,
                                                          short_tmp: Path) -> None:
    payloads = [b"hello\nworld\n" * 1000, b"second client\n"]
    kind, _, text = command.partition(":")
    with Service(["relay", f"unix://{short_tmp / 'ours.sock'}", command]) as relay:
        relay.wait_ready()
        ours = [_exchange(_unix(short_tmp / "ours.sock"), p) for p in payloads]
        relay.wait_for_line(r"exited, status 0")
        assert relay.stop() == 0
    theirs_path = short_tmp / "theirs.sock"
    socat_address = f"EXEC:{text}" if kind == "exec" else f"SYSTEM:{text}"
    with socat(f"UNIX-LISTEN:{theirs_path},fork", socat_address, ready=theirs_path):
        theirs = [_exchange(_unix(theirs_path), p) for p in payloads]
    assert ours == theirs
    assert ours[1] == (b"SECOND CLIENT\n" if kind == "exec" else b"TNEILC DNOCES\n")


def test_exec_uses_no_shell_and_ends_a_lingering_command(short_tmp: Path) -> None:
    sock = short_tmp / "x.sock"
    with Service(["relay", f"unix://{sock}", "exec:echo $HOME; ls"]) as relay:
        relay.wait_ready()
        assert _exchange(_unix(sock), b"") == b"$HOME; ls\n"  # words, not a shell line
        assert relay.stop() == 0
    with Service(["relay", f"unix://{sock}", "exec:sleep 600", "--max-processes", "1",
                  "--grace", "0.2"]) as relay:
        relay.wait_ready()
        held = _unix(sock)
        held.sendall(b"x")  # the sleep runs for this client
        refused = _exchange(_unix(sock), b"x")  # over --max-processes: closed at once
        assert refused == b""
        relay.wait_for_line(r"1 commands are running already")
        assert relay.stop() == 0  # the stop's grace ends the pair; the sleep is terminated
        held.close()
    assert any(re.search(r"exec:sleep 600 \(pid \d+\) terminated, status -15", line)
               for line in relay.stderr), relay.stderr


# ----------------------------------------------------------------------------- dump

_HEADER = re.compile(rb"^([<>]) \d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+  (length=\d+ from=\d+ "
                     rb"to=\d+)(?:  connection=\d+)?$")


def _dump(lines: list[bytes]) -> list[bytes]:
    """The dump without the times and our connection field; socat's 'socat[pid] N' noise
    (none with -v/-x) is not expected."""
    out = []
    for line in lines:
        match = _HEADER.match(line)
        out.append(match.group(1) + b" " + match.group(2) if match else line)
    return out


@pytest.mark.parametrize("flags", [["-v"], ["-x"], ["-v", "-x"]])
def test_dump_matches_socat(flags: list[str], short_tmp: Path) -> None:
    payload = b"hello\r\nworld\x00\x01\xff tail\n" * 3  # not HTTP: echo sends it back
    with Service(["serve", "echo", "--on", f"unix://{short_tmp / 'echo.sock'}"]) as echo:
        (target,) = echo.wait_ready()
        with Service(["relay", *flags, f"unix://{short_tmp / 'ours.sock'}", target]) as relay:
            relay.wait_ready()
            assert _exchange(_unix(short_tmp / "ours.sock"), payload) == payload
            relay.wait_for_line(r"connection 1 closed")
            assert relay.stop() == 0
        ours = [line.encode("latin-1") for line in relay.stderr]
        theirs_path = short_tmp / "theirs.sock"
        with socat(*flags, f"UNIX-LISTEN:{theirs_path}",
                   f"UNIX-CONNECT:{short_tmp / 'echo.sock'}", ready=theirs_path) as proc:
            assert _exchange(_unix(theirs_path), payload) == payload
            assert proc.wait(DEADLINE) == 0
            assert proc.stderr is not None
            theirs = proc.stderr.read().split(b"\n")
    start = next(i for i, line in enumerate(ours) if _HEADER.match(line))
    ours = [line for line in ours[start:] if b"trunkline." not in line]
    if flags == ["-x"]:  # socat writes a chunk's hex on one line; we wrap at 16 bytes
        theirs = [line if _HEADER.match(line) else b" " + b" ".join(
            line.split()[i:i + 16]) for line in theirs for i in range(
            0, max(len(line.split()), 1), 16) if line or i == 0]
    assert _dump(ours) == _dump([line for line in theirs if line][:len(ours)])


# ----------------------------------------------------------------------------- websocket

def test_websocket_listen_bridged_to_a_stream(short_tmp: Path) -> None:
    with Service(["serve", "echo", "--on", "tcp://127.0.0.1:0"]) as echo:
        (target,) = echo.wait_ready()
        with Service(["relay", "ws://127.0.0.1:0/", target]) as relay:
            (ws_url,) = relay.wait_ready()
            assert ws_url.startswith("ws://127.0.0.1:")

            async def talk() -> list[object]:
                async with websockets.connect(ws_url) as ws:
                    await ws.send(b"\x00binary\xff")
                    first = await ws.recv()
                    await ws.send("text \u00e9")
                    second = await ws.recv()
                    return [first, second]

            assert asyncio.run(asyncio.wait_for(talk(), DEADLINE)) == [
                b"\x00binary\xff", "text \u00e9".encode()]  # bytes back, as binary frames
            relay.wait_for_line(r"WebSocket 1 closed: .* 15 bytes up, 15 bytes down")
            status = run(["call", ws_url.replace("ws://", "http://"), "-o", "/dev/null",
                          "-w", "%{http_code}"])
            assert status.stdout == b"426"  # plain HTTP: not a WebSocket client
            assert relay.stop() == 0


def test_stream_listen_bridged_to_a_websocket(short_tmp: Path) -> None:
    sock = short_tmp / "http.sock"
    with Service(["serve", "http-echo", "--on", f"unix://{sock}"]) as echo:
        echo.wait_ready()
        target = f"ws+unix://{str(sock).replace('/', '%2F')}/echo"
        with Service(["relay", "tcp://127.0.0.1:0", target]) as relay:
            (url,) = relay.wait_ready()
            data = b"a message of bytes"
            with socket.create_connection(_tcp(url), timeout=DEADLINE) as s:
                s.sendall(data)
                got = b""
                while len(got) < len(data):
                    got += s.recv(1 << 16)
                s.shutdown(socket.SHUT_WR)  # EOF: the relay closes the WebSocket with 1000
                assert s.recv(1 << 16) == b""  # and the close comes back as EOF
            assert got == data
            relay.wait_for_line(r"connection 1 closed: .* 18 bytes up, 18 bytes down")
            assert relay.stop() == 0


@pytest.mark.parametrize(("args", "hint"), [
    (["TCP-LISTEN:8000,fork", "TCP:127.0.0.1:9000"], b"did you mean tcp://0.0.0.0:8000"),
    (["tcp://127.0.0.1:0", "UNIX-CONNECT:/run/app.sock"], b"did you mean unix:///run/app.sock"),
    (["UDP-RECVFROM:5353", "udp://127.0.0.1:53"], b"did you mean udp://0.0.0.0:5353"),
    (["ws-l:127.0.0.1:8080", "tcp://127.0.0.1:9"], b"did you mean ws://127.0.0.1:8080/"),
])
def test_socat_and_websocat_syntax_gets_a_hint(args: list[str], hint: bytes) -> None:
    result = run(["relay", *args])
    assert result.returncode == 3, result.stderr
    assert hint in result.stderr
