"""httpx.AsyncClient on trunkline's transport: every address kind through the httpx API."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.client.test_http_client_peers import aiohttp_peer, silent_server, uvicorn_peer
from trunkline.client import HttpxTransport


async def test_httpx_over_a_unix_socket_by_url(short_tmp: Path) -> None:
    path = str(short_tmp / "hx.sock")
    async with uvicorn_peer(uds=path) as p, \
            httpx.AsyncClient(transport=HttpxTransport()) as client:
        url = f"http+unix://{quote(path, safe='')}"
        response = await client.get(url + "/users", params={"page": 2},
                                    headers={"X-Test": "1"})
        assert response.status_code == 200
        echo = response.json()
        assert echo["path"] == "/users" and echo["query"] == {"page": ["2"]}
        assert echo["headers"]["x-test"] == "1"
        assert echo["headers"]["user-agent"].startswith("python-httpx/")
        response = await client.post(url + "/j", json={"a": 1})
        assert response.json()["body_len"] == len(b'{"a":1}')
        for _ in range(3):
            await client.get(url + "/again")
        assert len(p.stats.connections) == 1  # keep-alive through trunkline's pool


async def test_httpx_unix_colon_form(short_tmp: Path) -> None:
    path = str(short_tmp / "hx2.sock")
    async with aiohttp_peer(uds=path), httpx.AsyncClient(transport=HttpxTransport()) as client:
        response = await client.get(f"http://unix:{path}:/colon")
        assert response.json()["path"] == "/colon"


async def test_httpx_transport_override_keeps_host(short_tmp: Path) -> None:
    path = str(short_tmp / "hx3.sock")
    transport = HttpxTransport(transport=f"unix://{path}")
    async with aiohttp_peer(uds=path), httpx.AsyncClient(
            transport=transport, base_url="http://api.internal") as client:
        response = await client.get("/v1/things")
        assert response.json()["host"] == "api.internal"
        assert response.json()["path"] == "/v1/things"


async def test_httpx_streaming_both_ways(short_tmp: Path) -> None:
    path = str(short_tmp / "hx4.sock")
    payload = bytes(range(256)) * 4096

    async def parts() -> Any:
        for i in range(0, len(payload), 100_000):
            yield payload[i:i + 100_000]

    async with aiohttp_peer(uds=path), httpx.AsyncClient(
            transport=HttpxTransport(transport=f"unix://{path}")) as client:
        echo = (await client.post("http://x/up", content=parts())).json()
        assert echo["body_sha256"] == hashlib.sha256(payload).hexdigest()
        got = bytearray()
        async with client.stream("GET", "http://x/stream?chunks=20&size=10000") as response:
            async for chunk in response.aiter_bytes():
                got += chunk
        assert len(got) == 200_000
        head = await client.head("http://x/h")
        assert head.status_code == 200 and head.content == b""


async def test_httpx_errors_are_httpx_errors() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    async with httpx.AsyncClient(transport=HttpxTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")
    async with silent_server() as (port, _), httpx.AsyncClient(
            transport=HttpxTransport(), timeout=httpx.Timeout(5, read=0.2)) as client:
        with pytest.raises(httpx.ReadTimeout) as info:
            await client.get(f"http://127.0.0.1:{port}/")
        assert isinstance(info.value.__cause__, TimeoutError)
