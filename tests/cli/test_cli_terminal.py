"""``trunkline connect`` and ``trunkline ws`` at a real terminal (a pty), as a person uses them:
typed lines go out on Enter, replies are printed as they come, Ctrl-D ends, Ctrl-C ends
cleanly. ``connect`` is compared byte for byte with socat in the same terminal script.
websocat is not packaged for Debian, so ``ws`` is held to websocat's documented behaviour
(a line is a text message, a message is printed with a newline, EOF closes).
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator

import pytest

from tests.support.cli_helpers import TRUNKLINE, Service
from tests.support.pty_helpers import CTRL_C, CTRL_D, Terminal
from tests.support.raw_peers import ScriptedServer, reset

needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    """host:port of one ``trunkline serve echo`` (raw bytes, and WebSocket echo too)."""
    with Service(["serve", "echo", "--on", "tcp://127.0.0.1:0"]) as server:
        (url,) = server.wait_ready()
        yield url.removeprefix("tcp://")
        assert server.stop() == 0


def _session(argv: list[str]) -> tuple[int, bytes]:
    """Type two lines (one not UTF-8), then Ctrl-D; what the terminal showed, and the status."""
    with Terminal(argv) as term:
        term.send(b"hello\r")
        term.expect(b"hello\r\nhello\r\n")  # the terminal's echo of the line, then the reply
        term.send(b"caf\xc3\xa9 \xff\xfe\r")
        term.expect(b"caf\xc3\xa9 \xff\xfe\r\ncaf\xc3\xa9 \xff\xfe\r\n")
        term.send(CTRL_D)
        code = term.wait()
        return code, bytes(term.output)


def test_connect_lines_and_raw_bytes_then_ctrl_d(echo: str) -> None:
    code, shown = _session([*TRUNKLINE, "connect", f"tcp://{echo}"])
    assert code == 0, shown


@needs_socat
def test_connect_shows_what_socat_shows(echo: str) -> None:
    ours = _session([*TRUNKLINE, "connect", f"tcp://{echo}"])
    socat = _session(["socat", "-", f"TCP:{echo}"])
    assert ours == socat


@needs_socat
@pytest.mark.parametrize("tool", ["trunkline", "socat"])
def test_ctrl_c_ends_cleanly(echo: str, tool: str) -> None:
    argv = ([*TRUNKLINE, "connect", f"tcp://{echo}"] if tool == "trunkline"
            else ["socat", "-", f"TCP:{echo}"])
    with Terminal(argv) as term:
        term.send(b"one\r")
        term.expect(b"one\r\none\r\n")
        term.send(CTRL_C)
        assert term.wait() == 130  # 128 + SIGINT, as a shell reports it for both
        assert bytes(term.output) == b"one\r\none\r\n^C"  # no traceback, no message


def test_replies_are_printed_as_they_come() -> None:
    """A server that speaks first, and again later without being asked: each line shows up
    at once, while the user has typed nothing (or half a line)."""
    def script(conn: socket.socket) -> None:
        conn.sendall(b"welcome\n")
        assert conn.recv(100) == b"go\n"
        for word in (b"one\n", b"two\n"):
            conn.sendall(word)
        assert conn.recv(100) == b""  # Ctrl-D half-closed our side
        conn.sendall(b"bye\n")

    with ScriptedServer(script) as server, \
            Terminal([*TRUNKLINE, "connect", server.url]) as term:
        term.expect(b"^welcome\r\n")
        term.send(b"go\r")
        term.expect(b"go\r\none\r\ntwo\r\n")
        term.send(CTRL_D)
        term.expect(b"bye\r\n")
        assert term.wait() == 0
    assert not server.errors, server.errors


def test_connect_reports_a_reset() -> None:
    """Issue 10 point 8: a peer that resets the connection (an allow-list refusal looks like
    this) is an error in words, exit 56, not a quiet exit 0."""
    def script(conn: socket.socket) -> None:
        assert conn.recv(100) == b"hi\n"
        reset(conn)

    with ScriptedServer(script) as server, \
            Terminal([*TRUNKLINE, "connect", server.url]) as term:
        term.send(b"hi\r")
        term.expect(b"trunkline connect: " + server.url.encode()
                    + rb": the peer reset the connection\r\n")
        assert term.wait() == 56


@needs_socat
def test_socat_is_silent_on_a_reset() -> None:
    """Where we deliberately differ (README, `connect`): socat ends with status 0 and no word
    when the peer resets, so a refused client cannot tell it from a normal end."""
    def script(conn: socket.socket) -> None:
        assert conn.recv(100) == b"hi\n"
        reset(conn)

    with ScriptedServer(script) as server, \
            Terminal(["socat", "-", f"TCP:{server.hostport}"]) as term:
        term.send(b"hi\r")
        assert term.wait() == 0
        assert bytes(term.output) == b"hi\r\n"


def test_ws_text_lines_then_ctrl_d(echo: str) -> None:
    with Terminal([*TRUNKLINE, "ws", f"ws://{echo}/"]) as term:
        term.send(b"hello\r")
        term.expect(b"hello\r\nhello\r\n")
        term.send("caf\u00e9\r".encode())
        term.expect("caf\u00e9\r\ncaf\u00e9\r\n".encode())
        term.send(CTRL_D)
        assert term.wait() == 0


def test_ws_binary_sends_raw_bytes(echo: str) -> None:
    """--binary: each read (a line, at a terminal) is one binary message, not UTF-8 checked;
    what comes back is written as it is (its newline is the one typed)."""
    with Terminal([*TRUNKLINE, "ws", "--binary", f"ws://{echo}/"]) as term:
        term.send(b"\xff\xfe raw\r")
        term.expect(b"\xff\xfe raw\r\n\xff\xfe raw\r\n")
        term.send(CTRL_D)
        assert term.wait() == 0


def test_ws_ctrl_c_ends_cleanly(echo: str) -> None:
    with Terminal([*TRUNKLINE, "ws", f"ws://{echo}/"]) as term:
        term.send(b"one\r")
        term.expect(b"one\r\none\r\n")
        term.send(CTRL_C)
        assert term.wait() == 130
        assert bytes(term.output) == b"one\r\none\r\n^C"
