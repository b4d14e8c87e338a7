"""One exit-status table for every command (issue 13 point 4), addresses that say what was
meant, and errors in words: each case drives the real command in a subprocess."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.support.cli_helpers import free_port, run
from trunkline.cli.exits import MEANING

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS = [["serve"], ["connect"], ["relay"], ["call"], ["ws"], ["tour"], ["bench"], ["map"],
            ["services"], ["resolve"], ["registry"], ["dashboard"]]


def test_readme_table_is_the_code_table() -> None:
    text = README.read_text()
    section = text[text.index("<!-- exit-table"):]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE)
    shown = {int(code): meaning for code, meaning in rows[:len(MEANING)]}
    assert shown == {int(code): meaning for code, meaning in MEANING.items()}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_every_help_has_the_tables_rows(command: list[str]) -> None:
    done = run([*command, "--help"])
    assert done.returncode == 0
    text = " ".join(done.stdout.decode().split())
    assert "Exit status (the same numbers in every trunkline command" in text
    rows = re.findall(r"(\d+) ([a-z(][^0-9]*?)(?= \d+ |$)", text.split("Exit status", 1)[1])
    assert rows, text
    for code, meaning in rows:
        if int(code) in {int(c) for c in MEANING}:
            assert " ".join(MEANING[int(code)].split()).startswith(meaning.strip()[:20])


@pytest.mark.parametrize(("args", "code"), [
    (["connect", "tcp://127.0.0.1:99999"], 3),
    (["serve", "echo", "--on", "tcp://127.0.0.1"], 3),
    (["serve", "hello", "--on", "udp://127.0.0.1:0"], 3),  # an HTTP app needs a stream
    (["relay", "udp://127.0.0.1:0", "tcp://127.0.0.1:1"], 3),
    (["call", "ftp://127.0.0.1/"], 3),
    (["ws", "tcp://127.0.0.1:1"], 3),
    (["connect", "--bogus"], 2),
    (["serve", "echo"], 2),
    (["call", "http://127.0.0.1:1/", "--max-redirs", "-1"], 2),
])
def test_bad_address_is_3_and_bad_usage_is_2_everywhere(args: list[str], code: int) -> None:
    done = run(args, input=b"")
    assert done.returncode == code, done.stderr
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize(("typed", "meant"), [
    ("localhost:8000", "tcp://localhost:8000"),
    ("127.0.0.1:8000", "tcp://127.0.0.1:8000"),
    ("[::1]:8000", "tcp://[::1]:8000"),
    ("/run/app.sock", "unix:///run/app.sock"),
    ("/tmp/app.fifo", "fifo:///tmp/app.fifo"),
    ("TCP-LISTEN:8000,fork,reuseaddr", "tcp://0.0.0.0:8000"),
    ("TCP:127.0.0.1:80", "tcp://127.0.0.1:80"),
    ("tcp:127.0.0.1:80", "tcp://127.0.0.1:80"),
    ("UNIX-CONNECT:/x.sock", "unix:///x.sock"),
    ("ABSTRACT-LISTEN:app", "unix:@app"),
    ("UDP-LISTEN:53", "udp://0.0.0.0:53"),
    ("OPENSSL:example.test:443", "tls://example.test:443"),
])
def test_did_you_mean(typed: str, meant: str) -> None:
    for args in (["connect", typed], ["relay", typed, "tcp://127.0.0.1:1"]):
        done = run(args, input=b"")
        assert done.returncode == 3, done.stderr
        assert f"did you mean {meant}".encode() in done.stderr


def test_http_urls_without_a_scheme() -> None:
    done = run(["ws", "localhost:8000/chat"], input=b"")
    assert done.returncode == 3 and b"did you mean ws://localhost:8000/chat?" in done.stderr
    done = run(["call", "/run/app.sock"])
    assert done.returncode == 3
    assert b"did you mean http+unix://%2Frun%2Fapp.sock/?" in done.stderr


def test_userinfo_in_a_socket_address_is_refused() -> None:
    done = run(["connect", "tcp://ada:pw@127.0.0.1:1"], input=b"")
    assert done.returncode == 3
    assert b"userinfo 'ada:pw@' has no place in a tcp address" in done.stderr


@pytest.mark.parametrize("args", [
    ["connect", "tcp://127.0.0.1:0"], ["connect", "udp://127.0.0.1:0"],
    ["call", "http://127.0.0.1:0/"], ["ws", "ws://127.0.0.1:0/"]])
def test_a_client_cannot_dial_port_0(args: list[str]) -> None:
    done = run(args, input=b"")
    assert done.returncode == 3, done.stderr
    assert b"port 0 means any free port, which only a server can take" in done.stderr


def test_errors_in_words_without_errno_or_doubled_addresses(tmp_path: Path) -> None:
    port = free_port()
    tcp = f"tcp://127.0.0.1:{port}"
    sock = f"unix://{tmp_path}/none.sock"
    for args, words in (
            (["connect", tcp], "connection refused"),
            (["call", f"http://127.0.0.1:{port}/"], "connection refused"),
            (["ws", f"ws://127.0.0.1:{port}/"], "connection refused"),
            (["connect", sock], "no such file")):
        done = run(args, input=b"")
        err = done.stderr.decode()
        assert done.returncode == 7, err
        assert "[Errno" not in err and "Connect call failed" not in err
        assert words in err and "is the server running? (trunkline serve echo --on" in err
        where = tcp if "127.0.0.1" in args[1] else sock
        assert err.count(where) == 2  # once in the message, once in the fix


def test_serve_exit_statuses_agree_with_the_readme() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = run(["serve", "echo", "--on", f"tcp://127.0.0.1:{taken.getsockname()[1]}"])
    assert done.returncode == 1 and b"already in use" in done.stderr
    text = README.read_text()
    assert ("Exit 1: an address could not be bound (in use, permission); 2: bad usage; 3: a "
            "malformed") in " ".join(text.split())
