"""``trunkline serve``'s uvicorn options, each driven through the real command and, where
uvicorn has the option, compared with ``uvicorn`` run the same way on the same app: limits,
timeouts, access log and log level, root path, proxy headers, lifespan, env file, the
``TRUNKLINE_SERVE_*`` variables."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.cli_helpers import Service, run

SCOPE_APP = '''
import json, os

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                os.environ["STARTED"] = "yes"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = {"client": scope.get("client"), "scheme": scope["scheme"],
              "path": scope["path"], "root_path": scope.get("root_path"),
              "raw_path": scope["raw_path"].decode(), "greeting": os.environ.get("GREETING"),
              "started": os.environ.get("STARTED"), "body": len(body)}
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})
'''

FAILING_LIFESPAN = '''
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database down"})
'''

UVICORN_READY = r"Uvicorn running on (?:http://([\d.]+):(\d+)|unix socket (\S+))"


@pytest.fixture
def app_dir(short_tmp: Path) -> Path:
    (short_tmp / "scopeapp.py").write_text(SCOPE_APP)
    (short_tmp / "failing.py").write_text(FAILING_LIFESPAN)
    return short_tmp


def _tcp(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    return host, int(port)


@contextmanager
def trunkline(args: Sequence[str], app_dir: Path,
              env: dict[str, str] | None = None) -> Iterator[tuple[Service, str]]:
    on = [] if "--on" in args else ["--on", "tcp://127.0.0.1:0"]
    with Service(["serve", "scopeapp:app", "--app-dir", str(app_dir), *on, *args],
                 env=env) as service:
        (url,) = service.wait_ready()
        yield service, url


@contextmanager
def uvicorn(args: Sequence[str], app_dir: Path) -> Iterator[tuple[Service, str]]:
    """uvicorn on the same app, from its own command line; its URL as ours would be."""
    with Service(["scopeapp:app", "--app-dir", str(app_dir), *args],
                 command=[sys.executable, "-m", "uvicorn"]) as service:
        match = service.wait_for_line(UVICORN_READY)
        host, port, path = match.groups()
        yield service, f"unix://{path}" if path else f"tcp://{host}:{port}"


def get(url: str, path: str = "/", headers: dict[str, str] | None = None,
        body: bytes | None = None) -> tuple[int, dict[str, object] | bytes]:
    """One request over a fresh connection: (status, JSON answer or raw body)."""
    if url.startswith("unix://"):
        cmd = ["curl", "-sS", "--unix-socket", url.removeprefix("unix://"),
               "-w", "\n%{http_code}", f"http://x{path}"]
        for name, value in (headers or {}).items():
            cmd += ["-H", f"{name}: {value}"]
        out = subprocess.run(cmd, capture_output=True, timeout=20, check=True).stdout
        text, _, status = out.rpartition(b"\n")
        return int(status), json.loads(text)
    conn = http.client.HTTPConnection(*_tcp(url), timeout=20)
    try:
        conn.request("POST" if body is not None else "GET", path, body=body,
                      headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.getheader("content-type") == "application/json":
        return response.status, json.loads(data)
    return response.status, data


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(20)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# ----------------------------------------------------------------------------- limits

def test_limits_answer_with_their_status(app_dir: Path) -> None:
    args = ["--limit-body", "1k", "--limit-header-count", "5", "--limit-request-line", "200",
            "--limit-header-size", "2k"]
    with trunkline(args, app_dir) as (service, url):
        assert get(url, body=b"x" * 1024)[0] == 200
        assert get(url, body=b"x" * 1025)[0] == 413
        assert get(url, headers={f"x-h{i}": "1" for i in range(3)})[0] == 200
        assert get(url, headers={f"x-h{i}": "1" for i in range(8)})[0] == 431
        assert get(url, "/" + "a" * 300)[0] == 414
        assert get(url, headers={"x-big": "b" * 3000})[0] == 431
        assert service.stop() == 0
    with trunkline(["--limit-body", "0"], app_dir) as (service, url):  # 0: no limit
        status, answer = get(url, body=b"y" * (3 << 20))
        assert (status, answer["body"]) == (200, 3 << 20)  # type: ignore[index]
        assert service.stop() == 0


def test_limit_concurrency_answers_503_past_the_limit(app_dir: Path) -> None:
    with trunkline(["--limit-concurrency", "1"], app_dir) as (service, url):
        with socket.create_connection(_tcp(url), timeout=20) as held:
            held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert held.recv(65536).startswith(b"HTTP/1.1 200")  # kept alive: still counts
            assert get(url)[0] == 503
        assert service.stop() == 0


def test_bad_sizes_are_usage_errors() -> None:
    result = run(["serve", "hello", "--on", "tcp://127.0.0.1:0", "--limit-body", "lots"])
    assert result.returncode == 2
    assert b"'lots' is not a size" in result.stderr


# ----------------------------------------------------------------------------- timeouts

@pytest.mark.parametrize("server", ["trunkline", "uvicorn"])
def test_timeout_keep_alive_closes_an_idle_connection(server: str, app_dir: Path) -> None:
    start = trunkline if server == "trunkline" else uvicorn
    args = ["--timeout-keep-alive", "1"] + ([] if server == "trunkline" else ["--port", "0"])
    with start(args, app_dir) as (service, url), \
            socket.create_connection(_tcp(url), timeout=20) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        # the reply, then the close after 1 s idle (uvicorn takes whole seconds)
        answer = closed_by_server(sock)
        assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1") == 1


def test_timeout_header_closes_a_slow_head(app_dir: Path) -> None:
    with trunkline(["--timeout-header", "0.3"], app_dir) as (service, url), \
            socket.create_connection(_tcp(url), timeout=20) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        answer = closed_by_server(sock)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408")


# ----------------------------------------------------------------------------- logging

@pytest.mark.parametrize("server", ["trunkline", "uvicorn"])
def test_no_access_log_drops_request_lines_only(server: str, app_dir: Path) -> None:
    start = trunkline if server == "trunkline" else uvicorn
    port = [] if server == "trunkline" else ["--port", "0"]
    request_line = re.compile(r'"GET /logged HTTP/1.1" 200')
    for args, logged in (([], True), (["--no-access-log"], False)):
        with start([*args, *port], app_dir) as (service, url):
            get(url, "/logged")
            service.stop()  # uvicorn re-raises SIGTERM after its stop: -15, not 0
            assert service.proc.stdout is not None
            # uvicorn logs requests on stdout, trunkline on stderr with its other lines
            lines = service.stderr + service.proc.stdout.read().decode().splitlines()
        assert any(request_line.search(line) for line in lines) is logged, lines


def test_log_level_warning_silences_info_and_debug_shows_more(app_dir: Path) -> None:
    with trunkline(["--log-level", "warning"], app_dir) as (service, url):
        get(url)
        assert service.stop() == 0
    assert [line for line in service.stderr if not line.startswith("listening on")] == []
    with trunkline(["--log-level", "debug"], app_dir) as (service, url):
        get(url, "/debugged")
        assert service.stop() == 0
    assert any('"GET /debugged' in line for line in service.stderr)
    assert any("stopping (SIGTERM)" in line for line in service.stderr)


# ----------------------------------------------------------------------------- root path

def test_root_path_matches_uvicorn(app_dir: Path) -> None:
    answers = []
    for start, port in ((trunkline, []), (uvicorn, ["--port", "0"])):
        with start(["--root-path", "/api", *port], app_dir) as (service, url):
            status, answer = get(url, "/users/7?x=1")
            assert status == 200
            answers.append({k: answer[k] for k in ("path", "root_path", "raw_path")})  # type: ignore[index]
    assert answers[0] == answers[1] == {"path": "/api/users/7", "root_path": "/api",
                                        "raw_path": "/api/users/7"}


# ----------------------------------------------------------------------------- proxy headers

FORWARDED = [
    {},
    {"X-Forwarded-For": "203.0.113.7"},
    {"X-Forwarded-For": "203.0.113.7, 127.0.0.1", "X-Forwarded-Proto": "https"},
    {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"},
    {"X-Forwarded-For": "203.0.113.7:4321"},
    {"X-Forwarded-For": "[2001:db8::1]:80", "X-Forwarded-Proto": "https"},
    {"X-Forwarded-Proto": "gopher"},
    {"X-Forwarded-For": ""},
]


def _seen(url: str, headers: dict[str, str]) -> tuple[object, object]:
    status, answer = get(url, headers=headers)
    assert status == 200
    client = answer["client"]  # type: ignore[index]
    if isinstance(client, list) and client[0] == "127.0.0.1":
        client = ["127.0.0.1", "peer port"]  # the test's own port differs per connection
    return client, answer["scheme"]  # type: ignore[index]


@pytest.mark.parametrize("allow", [None, "*", "10.0.0.0/8", "127.0.0.0/8,203.0.113.7"])
def test_proxy_headers_match_uvicorn_over_tcp(allow: str | None, app_dir: Path) -> None:
    ours = ["--proxy-headers"] + (["--forwarded-allow-ips", allow] if allow else [])
    theirs = ["--port", "0"] + (["--forwarded-allow-ips", allow] if allow else [])
    with trunkline(ours, app_dir) as (_, url):
        trunkline_saw = [_seen(url, h) for h in FORWARDED]
    with uvicorn(theirs, app_dir) as (_, url):
        uvicorn_saw = [_seen(url, h) for h in FORWARDED]
    assert trunkline_saw == uvicorn_saw
    if allow != "10.0.0.0/8":
        assert trunkline_saw[1] == (["203.0.113.7", 0], "http")  # trusted: taken
    else:
        assert trunkline_saw[1] == (["127.0.0.1", "peer port"], "http")  # not: ignored


def test_proxy_headers_off_by_default_and_untrusted_ignored(app_dir: Path) -> None:
    with trunkline([], app_dir) as (_, url):
        assert _seen(url, FORWARDED[2]) == (["127.0.0.1", "peer port"], "http")


@pytest.mark.parametrize("allow", [None, "*", "path"])
def test_proxy_headers_over_a_unix_socket(allow: str | None, app_dir: Path) -> None:
    """uvicorn trusts a Unix peer only with *; we also trust the peers of a listed socket
    path (uvicorn's help names paths, but its scope has no Unix peer address to match)."""
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    results = []
    for name in ("trunkline", "uvicorn"):
        path = app_dir / f"{name}.sock"
        trust = str(path) if allow == "path" else allow
        extra = ["--forwarded-allow-ips", trust] if trust else []
        if name == "trunkline":
            context = trunkline(["--on", f"unix://{path}", "--proxy-headers", *extra],
                                app_dir)
        else:
            context = uvicorn(["--uds", str(path), *extra], app_dir)
        with context as (_, url):
            _, answer = get(url if name == "uvicorn" else f"unix://{path}", headers=forwarded)
            results.append((answer["client"], answer["scheme"]))  # type: ignore[index]
    ours, theirs = results
    if allow == "path":
        assert ours == (["203.0.113.7", 0], "https")  # ours: the listed socket's peers
        assert theirs[1] == "http"  # uvicorn: no match
    else:
        assert ours == theirs
        assert ours[1] == ("https" if allow == "*" else "http")


def test_forwarded_allow_ips_without_proxy_headers_is_a_usage_error() -> None:
    result = run(["serve", "hello", "--on", "tcp://127.0.0.1:0",
                  "--forwarded-allow-ips", "10.0.0.1"])
    assert result.returncode == 2
    assert b"add --proxy-headers" in result.stderr


# ----------------------------------------------------------------------------- lifespan

def test_lifespan_modes(app_dir: Path) -> None:
    for mode, started in (("auto", "yes"), ("on", "yes"), ("off", None)):
        with trunkline(["--lifespan", mode], app_dir) as (service, url):
            assert get(url)[1]["started"] == started  # type: ignore[index]
            assert service.stop() == 0


def test_failed_lifespan_startup_exits_like_uvicorn(app_dir: Path) -> None:
    ours = run(["serve", "failing:app", "--app-dir", str(app_dir), "--on", "tcp://127.0.0.1:0",
                "--lifespan", "on"])
    theirs = subprocess.run([sys.executable, "-m", "uvicorn", "failing:app", "--app-dir",
                             str(app_dir), "--port", "0", "--lifespan", "on"],
                            capture_output=True, timeout=20, check=False)
    assert b"database down" in ours.stderr and b"database down" in theirs.stderr
    assert b"listening on" not in ours.stderr
    # uvicorn exits 3; ours is 1 from the one exit table ("could not listen or start")
    assert (ours.returncode, theirs.returncode) == (1, 3)
    # off: the app is never asked, so its failure does not matter
    with trunkline(["--lifespan", "off"], app_dir) as (service, url):
        assert service.stop() == 0


# ----------------------------------------------------------------------------- env file

def test_env_file_matches_uvicorn(app_dir: Path) -> None:
    env_file = app_dir / "app.env"
    env_file.write_text("GREETING='hello from .env'\n# a comment\nexport OTHER=1\n")
    seen = []
    for start, port in ((trunkline, []), (uvicorn, ["--port", "0"])):
        with start(["--env-file", str(env_file), *port], app_dir) as (_, url):
            seen.append(get(url)[1]["greeting"])  # type: ignore[index]
    assert seen == ["hello from .env", "hello from .env"]
    # a variable already set wins over the file, as with uvicorn (python-dotenv)
    env = dict(os.environ, GREETING="from the shell")
    with trunkline(["--env-file", str(env_file)], app_dir, env=env) as (_, url):
        assert get(url)[1]["greeting"] == "from the shell"  # type: ignore[index]


def test_missing_env_file_is_a_usage_error() -> None:
    result = run(["serve", "hello", "--on", "tcp://127.0.0.1:0", "--env-file", "/nonexistent"])
    assert result.returncode == 2
    assert b"/nonexistent" in result.stderr


# ----------------------------------------------------------------------------- environment

def test_every_option_from_the_environment_command_line_wins(app_dir: Path) -> None:
    env = dict(os.environ, TRUNKLINE_SERVE_ON="tcp://127.0.0.1:0",
               TRUNKLINE_SERVE_LIMIT_BODY="10", TRUNKLINE_SERVE_ROOT_PATH="/env",
               TRUNKLINE_SERVE_PROXY_HEADERS="1", TRUNKLINE_SERVE_NO_ACCESS_LOG="1")
    with Service(["serve", "scopeapp:app", "--app-dir", str(app_dir)], env=env) as service:
        (url,) = service.wait_ready()
        assert get(url, body=b"x" * 11)[0] == 413
        status, answer = get(url, "/p", headers={"X-Forwarded-For": "203.0.113.9"})
        assert answer["root_path"] == "/env"  # type: ignore[index]
        assert answer["client"] == ["203.0.113.9", 0]  # type: ignore[index]
        assert service.stop() == 0
    with Service(["serve", "scopeapp:app", "--app-dir", str(app_dir), "--limit-body", "20",
                  "--on", "tcp://127.0.0.1:0"], env=env) as service:
        (url,) = service.wait_ready()
        assert get(url, body=b"x" * 11)[0] == 200  # the command line wins
        assert service.stop() == 0


def test_unknown_module_is_a_usage_error(app_dir: Path) -> None:
    result = run(["serve", "nosuchmodule:app", "--app-dir", str(app_dir), "--on",
                  "tcp://127.0.0.1:0"])
    assert result.returncode == 2
    assert b"cannot import module 'nosuchmodule'" in result.stderr
