"""``trunkline ws``: pipes against our echo server over every kind, binary mode, exit statuses,
interactive use (stdin left open), the transport override."""

from __future__ import annotations

import ast
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import trunkline
from tests.support.cli_helpers import Service, free_port, run
from tests.support.websocket_support import echo_app, serving, ws_url

TRUNKLINE = [sys.executable, "-m", "trunkline", "ws"]


async def run_ws(*args: str, input: bytes | None = b"", timeout: float = 20.0
                 ) -> tuple[int, bytes, bytes]:
    """``trunkline ws ARGS`` with ``input`` on stdin (None: /dev/null)."""
    proc = await asyncio.create_subprocess_exec(
        *TRUNKLINE, *args, stdin=asyncio.subprocess.PIPE if input is not None else
        asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


@pytest.fixture
async def echo(short_tmp: Path) -> AsyncIterator[dict[str, str]]:
    urls = ["tcp://127.0.0.1:0", f"unix://{short_tmp}/e.sock", f"fifo://{short_tmp}/e.fifo",
            f"unix:@tl-cli-ws-{os.getpid()}-{short_tmp.name}"]
    async with serving(echo_app, *urls) as server:
        yield {kind: ws_url(server, "/", i)
               for i, kind in enumerate(["tcp", "unix", "fifo", "abstract"])}


async def test_lines_in_a_pipe_over_every_kind(echo: dict[str, str]) -> None:
    kinds = ["tcp", "unix", "fifo", "abstract"]
    results = await asyncio.gather(*(run_ws(echo[kind], input=b"one\ntwo\r\n\nthree")
                                     for kind in kinds))
    for kind, result in zip(kinds, results, strict=True):
        assert result == (0, b"one\ntwo\n\nthree\n", b""), kind


async def test_binary_mode_is_byte_exact(echo: dict[str, str], tmp_path: Path) -> None:
    data = os.urandom(200_000) + b"\n\r\0" * 1000
    code, out, err = await run_ws(echo["unix"], "--binary", input=data)
    assert code == 0, err
    assert out == data


async def test_empty_stdin_closes_cleanly(echo: dict[str, str]) -> None:
    assert await run_ws(echo["tcp"], "--wait", "0", input=None) == (0, b"", b"")


async def test_server_close_codes_and_refusals(echo: dict[str, str]) -> None:
    base = echo["unix"].removesuffix("/")
    code, out, err = await run_ws(base + "/close", input=None)
    assert code == 56 and b"4001" in err and b"bye now" in err
    code, out, err = await run_ws(base + "/deny")
    assert code == 7 and b"403" in err and err.count(b"\n") == 1, err


async def test_interactive_session_ends_when_the_server_closes(echo: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *TRUNKLINE, echo["fifo"].removesuffix("/") + "/close", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:  # stdin stays open, as at a terminal
        code = await asyncio.wait_for(proc.wait(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
        assert proc.stdin is not None
        proc.stdin.close()
    assert code == 56


async def test_replies_arrive_while_stdin_is_open(echo: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *TRUNKLINE, echo["unix"], "--wait", "0", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for word in (b"ping", b"pong"):
            proc.stdin.write(word + b"\n")
            await proc.stdin.drain()
            assert await asyncio.wait_for(proc.stdout.readline(), 10) == word + b"\n"
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_via_keeps_the_urls_host(echo: dict[str, str], short_tmp: Path) -> None:
    code, out, err = await run_ws("ws://api.test:8080/scope", "--via",
                                  f"unix://{short_tmp}/e.sock", "-p", "chat", "-H",
                                  "X-Token: abc", "--wait", "0.5", input=None)
    assert code == 0, err
    scope = ast.literal_eval(out.decode().splitlines()[0])
    assert scope["headers"]["host"] == "api.test:8080" and scope["headers"]["x-token"] == "abc"
    assert scope["subprotocols"] == ["chat"]


async def test_trace_goes_to_stderr(echo: dict[str, str]) -> None:
    code, out, err = await run_ws(echo["tcp"], "--trace", input=b"traced\n")
    assert code == 0 and out == b"traced\n"
    for step in (b"upgrade", b"send", b"receive", b"close"):
        assert b"client conn 1 " + step in err


async def test_exit_statuses_for_bad_input_and_unreachable_servers(short_tmp: Path) -> None:
    code, _, err = await run_ws("http://127.0.0.1:1/", input=None)
    assert code == 3 and b"not a WebSocket scheme" in err
    code, _, err = await run_ws(f"ws://127.0.0.1:{free_port()}/", input=None)
    assert code == 7 and b"connection refused" in err, err
    code, _, err = await run_ws(f"ws+unix://{str(short_tmp / 'no.sock').replace('/', '%2F')}/")
    assert code == 7 and b"no such file" in err, err
    code, _, err = await run_ws("ws://127.0.0.1:1/", "--wait", "-1")
    assert code == 2

    async def silent(stream: trunkline.Stream) -> None:
        await stream.read()
        await stream.read()

    async with await trunkline.serve(silent, "tcp://127.0.0.1:0") as server:
        url = "ws://" + server.urls[0].removeprefix("tcp://") + "/"
        code, _, err = await run_ws(url, "--timeout", "0.5", input=None)
        assert code == 28 and b"took longer" in err


async def test_non_utf8_line_in_text_mode(echo: dict[str, str]) -> None:
    code, out, err = await run_ws(echo["tcp"], input=b"fine\n\xff\xfe\n")
    assert code == 2 and b"line 2 is not UTF-8" in err


async def test_help_has_examples() -> None:
    code, out, _ = await run_ws("--help")
    assert code == 0 and b"Examples:" in out and b"--binary" in out and b"Exit status" in out


def _ws(listening: str, path: str = "/") -> str:
    """The ws URL for a ``listening on`` URL of trunkline serve."""
    from urllib.parse import quote

    kind, _, rest = listening.partition(":")
    name = rest.removeprefix("//")
    if kind == "tcp":
        return f"ws://{name}{path}"
    return f"ws+{kind}://{quote(name, safe='')}{path}"


def test_against_trunkline_serve_http_echo_and_chat(short_tmp: Path) -> None:
    on = [f"unix://{short_tmp}/s.sock", f"fifo://{short_tmp}/s.fifo", "tcp://127.0.0.1:0"]
    with Service(["serve", "http-echo", *[a for u in on for a in ("--on", u)]]) as server:
        urls = server.wait_ready(len(on))
        with ThreadPoolExecutor(len(urls)) as pool:  # the sessions run side by side
            results = list(pool.map(lambda url: run(["ws", _ws(url)], input=b"one\ntwo\n"),
                                    urls))
        for url, done in zip(urls, results, strict=True):
            assert (done.returncode, done.stdout) == (0, b"one\ntwo\n"), (url, done.stderr)
        assert server.stop() == 0
    name = f"tl-chat-{os.getpid()}-{short_tmp.name}"
    with Service(["serve", "chat", "--on", f"unix:@{name}"]) as server:
        (url,) = server.wait_ready()
        done = run(["ws", _ws(url), "--wait", "0.5"], input=b"hello room\n")
        assert (done.returncode, done.stdout) == (0, b"hello room\n"), done.stderr
        assert server.stop() == 0


async def test_wss_with_cacert_and_insecure(tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, cafile = tmp_path / "c.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    ca.cert_pem.write_to_path(cafile)
    async with serving(echo_app, "tls://127.0.0.1:0", certfile=str(certfile)) as server:
        url = ws_url(server)
        trusted, insecure, untrusted = await asyncio.gather(
            run_ws(url, "--cacert", str(cafile), input=b"secure\n"),
            run_ws(url, "-k", input=b"unchecked\n"),
            run_ws(url, input=b"nope\n"))
    assert trusted == (0, b"secure\n", b"")
    assert insecure == (0, b"unchecked\n", b"")
    assert untrusted[0] == 60 and b"not trusted" in untrusted[2]
