"""Real clients against the server on every stream kind: curl, httpx, aiohttp, http.client;
TLS with a CA made at test time; scope ``server``/``client`` and the transport extension."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import trustme

from tests.support.http_server_support import Raw, running
from trunkline.apps import echo_app, hello_app

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])


async def curl(*args: str) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "10", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out + err


def abstract_name(tmp: Path) -> str:
    return f"tl-http-{os.getpid()}-{tmp.name}"


async def test_curl_over_tcp_unix_and_abstract(short_tmp: Path) -> None:
    sock = short_tmp / "s.sock"
    name = abstract_name(short_tmp)
    async with running(echo_app, "tcp://127.0.0.1:0", f"unix://{sock}", f"unix:@{name}") as srv:
        port = srv.urls[0].rsplit(":", 1)[1]
        code, out = await curl(f"http://127.0.0.1:{port}/tcp?q=1", "-d", "x=1")
        assert code == 0
        echo = json.loads(out)
        assert echo["method"] == "POST" and echo["path"] == "/tcp" and echo["query"] == "q=1"
        assert echo["body"] == "x=1" and echo["transport"]["kind"] == "tcp"
        assert echo["server"] == ["127.0.0.1", int(port)]
        assert echo["client"][0] == "127.0.0.1" and echo["transport"]["credentials"] is None

        code, out = await curl("--unix-socket", str(sock), "http://localhost/unix")
        assert code == 0
        echo = json.loads(out)
        assert echo["server"] == [str(sock), None] and echo["client"] is None
        ext = echo["transport"]
        assert ext["kind"] == "unix" and ext["local"] == str(sock)
        creds = ext["credentials"]
        assert creds["uid"] == os.getuid() and creds["gid"] == os.getgid() and creds["pid"] > 0

        code, out = await curl("--abstract-unix-socket", name, "http://localhost/abstract")
        assert code == 0
        echo = json.loads(out)
        assert echo["server"] == ["@" + name, None]
        assert echo["transport"]["local"] == "@" + name
        assert echo["transport"]["credentials"]["uid"] == os.getuid()
    assert not sock.exists()  # the socket file went with the server


async def test_httpx_over_tcp_and_uds(short_tmp: Path) -> None:
    sock = short_tmp / "s.sock"
    async with running(echo_app, "tcp://127.0.0.1:0", f"unix://{sock}") as srv:
        port = srv.urls[0].rsplit(":", 1)[1]
        async with httpx.AsyncClient() as client:
            for _ in range(3):  # keep-alive: one connection, many requests
                r = await client.post(f"http://127.0.0.1:{port}/p", content=b"\x00\xff")
                assert r.status_code == 200 and r.json()["body_encoding"] == "base64"
        transport = httpx.AsyncHTTPTransport(uds=str(sock))
        async with httpx.AsyncClient(transport=transport) as client:
            r = await client.get("http://localhost/u", headers={"X-Test": "1"})
            assert r.status_code == 200 and ["x-test", "1"] in r.json()["headers"]
            assert r.headers["server"] == "trunkline" and "date" in r.headers


async def test_aiohttp_over_tcp_and_unix(short_tmp: Path) -> None:
    sock = short_tmp / "s.sock"
    async with running(echo_app, "tcp://127.0.0.1:0", f"unix://{sock}") as srv:
        port = srv.urls[0].rsplit(":", 1)[1]
        async with aiohttp.ClientSession() as session:
            async def chunks() -> Any:
                for piece in (b"ab", b"cd", b"ef"):
                    yield piece

            async with session.post(f"http://127.0.0.1:{port}/c", data=chunks()) as r:
                assert r.status == 200
                echo = await r.json()
                assert echo["body"] == "abcdef"
                assert ["transfer-encoding", "chunked"] in echo["headers"]
        connector = aiohttp.UnixConnector(path=str(sock))
        async with aiohttp.ClientSession(connector=connector) as s, \
                s.get("http://localhost/x") as r:
            assert r.status == 200 and (await r.json())["path"] == "/x"


async def test_http_client_stdlib() -> None:
    async with running(hello_app) as srv:
        port = int(srv.urls[0].rsplit(":", 1)[1])

        def call() -> list[tuple[int, bytes]]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            results = []
            for method in ("GET", "HEAD", "GET"):
                conn.request(method, "/")
                response = conn.getresponse()
                results.append((response.status, response.read()))
            conn.close()
            return results

        assert await asyncio.to_thread(call) == [
            (200, b"Hello, world!\n"), (200, b""), (200, b"Hello, world!\n")]


async def test_tls_with_a_test_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    async with running(echo_app, "tls://127.0.0.1:0", "tcp://127.0.0.1:0",
                       certfile=str(certfile), keyfile=str(keyfile)) as srv:
        tls_port = srv.urls[0].rsplit(":", 1)[1]
        assert srv.urls[0].startswith("tls://")
        context = ssl.create_default_context(cafile=str(ca_file))
        async with httpx.AsyncClient(verify=context) as client:
            r = await client.get(f"https://127.0.0.1:{tls_port}/secure")
            assert r.status_code == 200
            echo = r.json()
            assert echo["scheme"] == "https" and echo["transport"]["kind"] == "tls"
        code, out = await curl("--cacert", str(ca_file), f"https://127.0.0.1:{tls_port}/c")
        assert code == 0 and json.loads(out)["scheme"] == "https"
        plain = srv.urls[1].rsplit(":", 1)[1]
        code, out = await curl(f"http://127.0.0.1:{plain}/")
        assert json.loads(out)["scheme"] == "http"


async def test_fifo_and_fd(short_tmp: Path) -> None:
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    fd = listening.detach()  # the fd listener owns it from here
    fifo = short_tmp / "f.fifo"
    async with running(echo_app, f"fifo://{fifo}", f"fd://{fd}"):
        raw = await Raw.open(f"fifo://{fifo}")
        await raw.send(b"POST /over-a-pipe HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        status, _, body = await raw.read_response()
        echo = json.loads(body)
        assert status == 200 and echo["body"] == "hi" and echo["path"] == "/over-a-pipe"
        assert echo["transport"]["kind"] == "fifo"
        assert echo["server"] == [str(fifo), None]
        assert echo["transport"]["credentials"]["uid"] == os.getuid()
        await raw.send(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n")  # keep-alive on a pipe pair
        assert json.loads((await raw.read_response())[2])["path"] == "/again"
        await raw.close()

        port = socket.socket(fileno=os.dup(fd))
        address = port.getsockname()
        port.close()
        raw = await Raw.open(f"tcp://127.0.0.1:{address[1]}")
        await raw.send(b"GET /fd HTTP/1.1\r\nHost: t\r\n\r\n")
        echo = json.loads((await raw.read_response())[2])
        assert echo["transport"]["kind"] == "tcp" and echo["transport"]["via"] == "fd"
        assert echo["server"] == ["127.0.0.1", address[1]]
        await raw.close()
