"""``trunkline serve --reload`` (a module edited, the new answer served on the same address)
and the stop as a person at a terminal sees it: Ctrl-C logs what it waits for, a second
Ctrl-C forces the exit (in a real pseudo-terminal, with and without --reload)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from tests.support.cli_helpers import TRUNKLINE, Service
from tests.support.pty_helpers import CTRL_C, Terminal

VERSIONED_APP = '''
from helper import WORD

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started ", "more_body": True})
        import asyncio
        await asyncio.sleep(600)  # held until the stop is forced
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": WORD.encode()})
'''


def _tcp(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    return host, int(port)


def _get(url: str, path: str = "/") -> bytes:
    with socket.create_connection(_tcp(url), timeout=20) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        sock.settimeout(20)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.partition(b"\r\n\r\n")[2]


@pytest.fixture
def project(short_tmp: Path) -> Path:
    (short_tmp / "main.py").write_text(VERSIONED_APP)
    (short_tmp / "helper.py").write_text('WORD = "one"\n')
    return short_tmp


def test_reload_serves_the_edited_module_on_the_same_address(project: Path) -> None:
    with Service(["serve", "main:app", "--app-dir", str(project), "--reload", "--reload-dir",
                  str(project), "--on", "tcp://127.0.0.1:0",
                  "--on", f"unix://{project / 'app.sock'}"]) as service:
        tcp_url, unix_url = service.wait_ready(2)
        assert _get(tcp_url) == b"one"
        # noise that must not restart it: bytecode, a virtualenv, a non-Python file
        (project / "__pycache__").mkdir(exist_ok=True)
        (project / "__pycache__" / "helper.cpython-311.pyc").write_bytes(b"x")
        (project / ".venv").mkdir()
        (project / ".venv" / "site.py").write_text("x = 1\n")
        (project / "notes.txt").write_text("x\n")
        (project / "helper.py").write_text('WORD = "two"\n')  # the edit
        service.wait_for_line(r"helper\.py changed; restarting")
        assert service.wait_ready(2) == [tcp_url, unix_url]  # port 0 kept its port
        assert _get(tcp_url) == b"two"
        changed = [line for line in service.stderr if "changed; restarting" in line]
        assert len(changed) == 1, service.stderr  # the noise restarted nothing
        # a broken edit: the child fails, the watcher waits for the fix
        (project / "helper.py").write_text('WORD = "three\n')
        service.wait_for_line(r"exited with status \d+; waiting for a change")
        (project / "helper.py").write_text('WORD = "three"\n')
        assert service.wait_ready(2) == [tcp_url, unix_url]
        assert _get(tcp_url) == b"three"
        assert service.stop() == 0
    assert not (project / "app.sock").exists()


def test_reload_without_watchfiles_says_how_to_get_it(project: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "watchfiles.py").write_text("raise ImportError('not installed')\n")
    env = {"PYTHONPATH": str(blocker)}
    with Service(["serve", "main:app", "--app-dir", str(project), "--reload",
                  "--on", "tcp://127.0.0.1:0"], env=env) as service:
        assert service.proc.wait(timeout=20) == 2
        service._reader.join(20)
    assert any("pip install 'trunkline[reload]'" in line for line in service.stderr)


def _hold_slow_request(url: str) -> tuple[socket.socket, threading.Event]:
    """A request the app never finishes; the event is set when the server cuts it."""
    sock = socket.create_connection(_tcp(url), timeout=30)
    sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    first = sock.recv(65536)
    assert b"200" in first
    cut = threading.Event()

    def read_until_cut() -> None:
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
        cut.set()

    threading.Thread(target=read_until_cut, daemon=True).start()
    return sock, cut


@pytest.mark.parametrize("reload", [False, True], ids=["plain", "reload"])
def test_ctrl_c_waits_and_a_second_ctrl_c_forces(reload: bool, project: Path) -> None:
    argv = [*TRUNKLINE, "serve", "main:app", "--app-dir", str(project), "--on",
            "tcp://127.0.0.1:0", "--grace", "600"]
    if reload:
        argv += ["--reload", "--reload-dir", str(project)]
    with Terminal(argv) as term:
        match = term.expect(rb"listening on (tcp://\S+)")
        url = match.group(1).decode()
        sock, cut = _hold_slow_request(url)
        with sock:
            term.send(CTRL_C)
            term.expect(r"stopping \(SIGINT\)")
            term.expect(r"waiting for 1 connection and 1 task \(up to 600 s\), Ctrl-C again "
                        r"to force")
            assert not cut.is_set()  # still waiting: the grace is 600 s
            term.send(CTRL_C)
            term.expect(r"aborting \(SIGINT\)")
            assert cut.wait(20)  # cut long before the grace
            assert term.wait() == 0


def test_ctrl_c_with_nothing_in_flight_stops_at_once(project: Path) -> None:
    argv = [*TRUNKLINE, "serve", "main:app", "--app-dir", str(project), "--on",
            "tcp://127.0.0.1:0"]
    with Terminal(argv) as term:
        term.expect(rb"listening on (tcp://\S+)")
        term.send(CTRL_C)
        term.expect(r"stopping \(SIGINT\)")
        assert term.wait() == 0
    assert b"waiting for" not in bytes(term.output)
