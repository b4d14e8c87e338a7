"""``trunkline call`` as a subprocess against real servers: output, options, exit statuses."""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.client.test_http_client_peers import aiohttp_peer, silent_server
from trunkline.cli.exits import failure
from trunkline.client import ServerDisconnectedError
from trunkline.errors import ConnectError, ResolveError


async def call(*args: str, stdin: bytes | None = None, cwd: Path | None = None
               ) -> tuple[int, bytes, str]:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trunkline", "call", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=cwd)
    out, err = await asyncio.wait_for(proc.communicate(stdin or b""), 30)
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()


async def test_get_post_json_and_include() -> None:
    async with aiohttp_peer() as p:
        code, out, _ = await call("GET", p.url + "/users?page=2")
        assert code == 0
        echo = json.loads(out)
        assert echo["method"] == "GET" and echo["query"] == {"page": ["2"]}

        code, out, _ = await call(p.url + "/form", "-d", "a=1&b=2")  # -d implies POST
        echo = json.loads(out)
        assert echo["method"] == "POST" and echo["body_len"] == 7
        assert echo["headers"]["content-type"] == "application/x-www-form-urlencoded"

        code, out, _ = await call("PUT", p.url + "/j", "--json", '{"a": 1}', "-H", "X-A: b")
        echo = json.loads(out)
        assert echo["method"] == "PUT" and echo["headers"]["content-type"] == "application/json"
        assert echo["headers"]["accept"] == "application/json"
        assert echo["headers"]["x-a"] == "b"

        code, out, _ = await call("-i", "HEAD", p.url + "/h")
        assert code == 0
        assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\n")


async def test_data_from_stdin_and_upload_file(tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(300_000))
    async with aiohttp_peer() as p:
        code, out, _ = await call(p.url + "/in", "-d", "@-", stdin=b"from stdin")
        assert json.loads(out)["body_len"] == len(b"from stdin")
        code, out, _ = await call(p.url + "/up", "-T", str(blob))
        echo = json.loads(out)
        assert code == 0 and echo["method"] == "PUT" and echo["body_len"] == 300_000
        code, _, err = await call(p.url + "/in", "-d", "@" + str(tmp_path / "missing"))
        assert code == 26 and "cannot read" in err


async def test_output_file_and_verbose(tmp_path: Path) -> None:
    target = tmp_path / "body.bin"
    async with aiohttp_peer() as p:
        code, out, err = await call("GET", p.url + "/stream?chunks=10&size=1000", "-o",
                                    str(target), "-v")
    assert code == 0 and out == b""
    assert target.read_bytes()[:1000] == b"A" * 1000 and target.stat().st_size == 10_000
    assert "> GET /stream?chunks=10&size=1000 HTTP/1.1" in err
    assert "> Host: 127.0.0.1:" in err
    assert "< HTTP/1.1 200 OK" in err
    assert "< Transfer-Encoding: chunked" in err


async def test_unix_socket_forms_keep_host(short_tmp: Path) -> None:
    path = str(short_tmp / "cli.sock")
    async with aiohttp_peer(uds=path) as p:
        code, out, _ = await call("GET", "http://api.internal/v1", "--unix-socket", path)
        assert code == 0 and json.loads(out)["host"] == "api.internal"
        code, out, _ = await call("GET", "http://api.internal/v1", "--via", f"unix://{path}")
        assert json.loads(out)["host"] == "api.internal"
        code, out, _ = await call(p.url + "/direct")
        assert json.loads(out)["path"] == "/direct"
        code, out, _ = await call(f"http://unix:{path}:/colon")
        assert json.loads(out)["path"] == "/colon"


async def test_exit_statuses(short_tmp: Path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    free_port = s.getsockname()[1]
    s.close()
    code, _, err = await call("GET", f"http://127.0.0.1:{free_port}/")
    assert code == 7 and "could not connect" in err
    code, _, _ = await call("GET", "http://x/", "--unix-socket", str(short_tmp / "no.sock"))
    assert code == 7
    code, _, err = await call("GET", "ftp://x/")
    assert code == 3 and "example" in err
    code, _, _ = await call("GET", "http://x/", "--bogus-option")
    assert code == 2
    async with aiohttp_peer() as p:
        code, out, _ = await call("GET", p.url + "/status/404")
        assert code == 0
        code, out, err = await call("GET", p.url + "/status/404", "--fail")
        assert code == 22 and out == b"" and "404" in err
        code, _, err = await call("GET", p.url + "/status/503", "-f", "-s")
        assert code == 22 and err == ""
    async with silent_server() as (port, _):
        code, _, err = await call("GET", f"http://127.0.0.1:{port}/", "--max-time", "0.3")
        assert code == 28 and "timeout" in err


async def test_tls_certificate_statuses(tmp_path: Path) -> None:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with aiohttp_peer(ssl_context=ctx, host="localhost") as p:
        code, _, err = await call("GET", p.url + "/s")
        assert code == 60 and "--cacert" in err
        code, out, _ = await call("GET", p.url + "/s", "--cacert", str(ca_file))
        assert code == 0 and json.loads(out)["path"] == "/s"
        code, out, _ = await call("GET", p.url + "/s", "-k")
        assert code == 0


@pytest.mark.parametrize(("error", "status"), [
    (ResolveError("no such name"), 6),
    (ConnectError("refused"), 7),
    (TimeoutError(), 28),
    (ServerDisconnectedError("gone", before_response=True), 52),
    (ServerDisconnectedError("cut", before_response=False), 18),
])
def test_exit_code_table(error: Any, status: int) -> None:
    assert failure(error).code == status


def test_help_documents_examples_and_exit_statuses() -> None:
    from click.testing import CliRunner

    from trunkline.cli import commands  # noqa: F401
    from trunkline.cli.main import cli

    result = CliRunner().invoke(cli, ["call", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--unix-socket" in result.output
    for status in ("0", "6", "7", "22", "28", "60"):
        assert f"  {status:>2}  " in result.output
