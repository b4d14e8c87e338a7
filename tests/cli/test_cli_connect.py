"""``trunkline connect``: pipes in and out over every kind, against ``trunkline serve echo``;
exit statuses scripts rely on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli_helpers import Service, free_port, run


@pytest.fixture(scope="module")
def echo_urls() -> Iterator[dict[str, str]]:
    """One ``serve echo`` for the module's stream tests, on a tcp, unix and fifo address."""
    tmp = Path(tempfile.mkdtemp(prefix="tl-", dir="/tmp"))
    urls = ["tcp://127.0.0.1:0", f"unix://{tmp / 'e.sock'}", f"fifo://{tmp / 'e.fifo'}"]
    try:
        with Service(["serve", "echo", *[a for u in urls for a in ("--on", u)]]) as server:
            ready = server.wait_ready(len(urls))
            yield dict(zip(["tcp", "unix", "fifo"], ready, strict=True))
            assert server.stop() == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("kind", ["tcp", "unix", "fifo"])
def test_stream_pipe_is_binary_safe(echo_urls: dict[str, str], kind: str) -> None:
    data = os.urandom(300_000) + b"\0\r\n\xff" * 100
    done = run(["connect", echo_urls[kind]], input=data)
    assert done.returncode == 0, done.stderr
    assert done.stdout == data
    assert done.stderr == b""


def test_small_line_in_a_shell_pipe(echo_urls: dict[str, str]) -> None:
    done = subprocess.run(["sh", "-c", f'echo hi | "$0" -m trunkline connect {echo_urls["unix"]}',
                           sys.executable],
                          capture_output=True, timeout=20, check=False)
    assert (done.returncode, done.stdout) == (0, b"hi\n"), done.stderr


def test_stdin_from_a_regular_file(echo_urls: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"from a file\n" * 1000)
    with open(source, "rb") as stdin:
        done = run(["connect", echo_urls["tcp"]], stdin=stdin.fileno())
    assert done.returncode == 0, done.stderr
    assert done.stdout == source.read_bytes()


def test_empty_stdin(echo_urls: dict[str, str]) -> None:
    done = run(["connect", echo_urls["tcp"]], stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stdout) == (0, b""), done.stderr


def test_udp_lines_are_datagrams() -> None:
    with Service(["serve", "echo", "--on", "udp://127.0.0.1:0"]) as server:
        (url,) = server.wait_ready()
        done = run(["connect", url, "--wait", "2"], input=b"one\ntwo\n\nlast")
        assert server.stop() == 0
    assert done.returncode == 0, done.stderr
    # each line (newline dropped) went as one datagram; each reply gets a newline back
    assert done.stdout.split(b"\n") == [b"one", b"two", b"", b"last", b""]


def test_refused_tcp_exits_7_in_words_with_the_fix() -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    done = run(["connect", url], input=b"x")
    assert done.returncode == 7  # curl's "could not connect"
    err = done.stderr.decode()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err == (f"trunkline connect: could not connect to {url}: connection refused; is the "
                   f"server running? (trunkline serve echo --on {url})\n")


def test_connect_timeout_exits_28() -> None:
    """A listener whose accept queue is full drops new SYNs, so connecting hangs."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                fillers.append(filler)
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            done = run(["connect", "--timeout", "0.5", f"tcp://127.0.0.1:{port}"], input=b"x")
        finally:
            for filler in fillers:
                filler.close()
    assert done.returncode == 28, done.stderr
    assert b"took longer than 0.5 s (raise --timeout)" in done.stderr


def test_missing_unix_socket_exits_7(short_tmp: Path) -> None:
    url = f"unix://{short_tmp / 'nobody.sock'}"
    done = run(["connect", url], input=b"x")
    assert done.returncode == 7
    assert done.stderr.decode() == (f"trunkline connect: could not connect to {url}: no such "
                                    f"file; is the server running? (trunkline serve echo --on "
                                    f"{url})\n")


def test_bad_address_exits_3() -> None:
    done = run(["connect", "tcp://127.0.0.1:99999"], input=b"")
    assert done.returncode == 3  # curl's "malformed URL"
    err = done.stderr.decode()
    assert "port 99999" in err and "Traceback" not in err


def test_help_documents_exit_statuses() -> None:
    done = run(["connect", "--help"])
    text = done.stdout.decode()
    for line in ("0  success", "2  bad usage", "3  malformed URL", "7  could not connect",
                 "28  timed out", "56  the connection broke while receiving"):
        assert line in text
