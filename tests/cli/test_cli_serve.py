"""``trunkline serve echo``: many addresses at once, readiness lines, clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from tests.support.cli_helpers import Service, run


def _echo_over_socket(family: int, address: object, data: bytes) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(address)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_echo_on_several_addresses_then_stop(short_tmp: Path, sig: int) -> None:
    sock_path = short_tmp / "echo.sock"
    fifo_path = short_tmp / "echo.fifo"
    abstract = f"tl-test-{os.getpid()}-{sig}"
    urls = ["tcp://127.0.0.1:0", f"unix://{sock_path}", f"unix:@{abstract}",
            f"fifo://{fifo_path}", "udp://127.0.0.1:0"]
    with Service(["serve", "echo", *[a for u in urls for a in ("--on", u)]]) as server:
        ready = server.wait_ready(len(urls))
        assert ready[1:4] == urls[1:4]
        assert ready[0].startswith("tcp://127.0.0.1:") and not ready[0].endswith(":0")
        assert ready[4].startswith("udp://127.0.0.1:") and not ready[4].endswith(":0")
        assert sock_path.is_socket()
        assert oct(sock_path.stat().st_mode & 0o777) == oct(0o600)

        host, port = ready[0].removeprefix("tcp://").rsplit(":", 1)
        assert _echo_over_socket(socket.AF_INET, (host, int(port)), b"tcp bytes") == b"tcp bytes"
        assert _echo_over_socket(socket.AF_UNIX, str(sock_path), b"uds bytes") == b"uds bytes"
        assert _echo_over_socket(socket.AF_UNIX, b"\0" + abstract.encode(), b"abs") == b"abs"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(10)
            host, port = ready[4].removeprefix("udp://").rsplit(":", 1)
            u.sendto(b"datagram", (host, int(port)))
            assert u.recvfrom(2048)[0] == b"datagram"

        assert server.stop(sig) == 0
    assert not sock_path.exists()
    assert not fifo_path.exists()
    assert list(short_tmp.iterdir()) == []


def test_serve_mode_option(short_tmp: Path) -> None:
    sock_path = short_tmp / "m.sock"
    with Service(["serve", "echo", "--on", f"unix://{sock_path}", "--mode", "0660"]) as server:
        server.wait_ready()
        assert oct(sock_path.stat().st_mode & 0o777) == oct(0o660)
        assert server.stop() == 0


def test_serve_an_inherited_socket() -> None:
    """fd://N: the readiness line names the socket's real address; the echo answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        fd = listener.fileno()
        with Service(["serve", "echo", "--on", f"fd://{fd}"], pass_fds=[fd]) as server:
            assert server.wait_ready() == [f"fd://{fd}"]
            assert f"(tcp 127.0.0.1:{port})" in server.stderr[0]
            done = run(["connect", f"tcp://127.0.0.1:{port}"], input=b"inherited\n")
            assert (done.returncode, done.stdout) == (0, b"inherited\n"), done.stderr
            assert server.stop() == 0


def test_unknown_app_lists_what_is_available() -> None:
    done = run(["serve", "nosuchapp", "--on", "tcp://127.0.0.1:0"])
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "unknown app 'nosuchapp'" in err and "echo" in err
    assert "Traceback" not in err


def test_bad_address_exits_3() -> None:
    done = run(["serve", "echo", "--on", "tcp://127.0.0.1"])
    assert done.returncode == 3
    assert "port is missing" in done.stderr.decode()


def test_address_in_use_exits_1(short_tmp: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(["serve", "echo", "--on", f"tcp://127.0.0.1:{port}"])
    assert done.returncode == 1
    err = done.stderr.decode().strip()
    assert "in use" in err and len(err.splitlines()) == 1


def test_help_shows_examples() -> None:
    for command in ("serve", "connect", "relay", "tour"):
        done = run([command, "--help"])
        assert done.returncode == 0
        assert "Examples:" in done.stdout.decode(), command


APP_MODULE = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = ("from " + scope["path"]).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def create_app():
    return app
'''


def _get_over_unix(path: Path, target: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("spec, extra", [("tl_user_app:app", []),
                                         ("tl_user_app:create_app", ["--factory"])])
def test_serve_an_asgi_app_from_app_dir(short_tmp: Path, spec: str, extra: list[str]) -> None:
    app_dir = short_tmp / "project"
    app_dir.mkdir()
    (app_dir / "tl_user_app.py").write_text(APP_MODULE)
    sock_path = short_tmp / "app.sock"
    with Service(["serve", spec, "--app-dir", str(app_dir), *extra,
                  "--on", f"unix://{sock_path}"]) as server:
        server.wait_ready(1)
        reply = _get_over_unix(sock_path, "/users")
        assert reply.startswith(b"HTTP/1.1 200 ")
        assert reply.endswith(b"from /users")
        assert server.stop() == 0


def test_serve_an_app_that_does_not_import_says_so() -> None:
    result = run(["serve", "tl_no_such_module:app", "--on", "tcp://127.0.0.1:0"])
    assert result.returncode != 0
    stderr = result.stderr.decode()
    assert "cannot import module 'tl_no_such_module'" in stderr
    assert "--app-dir" in stderr
