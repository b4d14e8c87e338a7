"""trunkline.Client against trunkline's own server on every stream kind it serves: TCP, a Unix
socket path, an abstract Unix name and a FIFO, with traces matched across the two sides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import trunkline
from tests.client.test_http_client_peers import Stats, asgi_app
from trunkline.trace import Tracer

server_mod = pytest.importorskip("trunkline.server")

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])


@pytest.fixture
async def served(short_tmp: Path) -> Any:
    tracer = Tracer()
    abstract = f"tl-client-{os.getpid()}-{short_tmp.name}"
    server = server_mod.AppServer(
        asgi_app(Stats()), "tcp://127.0.0.1:0", f"unix://{short_tmp}/s.sock",
        f"unix:@{abstract}", f"fifo://{short_tmp}/f.fifo", tracer=tracer)
    async with server:
        port = server.urls[0].rsplit(":", 1)[1]
        urls = {
            "tcp": f"http://127.0.0.1:{port}",
            "unix": f"http+unix://{quote(str(short_tmp / 's.sock'), safe='')}",
            "unix-colon": f"http://unix:{short_tmp}/s.sock:",
            "abstract": f"http+unix://{quote('@' + abstract, safe='')}",
            "fifo": f"http+fifo://{quote(str(short_tmp / 'f.fifo'), safe='')}",
        }
        yield urls, tracer


async def test_every_kind_every_method(served: Any) -> None:
    urls, _ = served
    async with trunkline.Client() as client:
        for kind, url in urls.items():
            for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"):
                body = b"abc" if method in ("POST", "PUT", "PATCH") else None
                response = await client.request(method, url + "/x?a=1", content=body)
                assert response.status_code == 200, (kind, method)
                if method != "HEAD":
                    echo = response.json()
                    assert echo["method"] == method and echo["query"] == {"a": ["1"]}
                    assert echo["body_len"] == (3 if body else 0)
            for code in (204, 304, 404):
                assert (await client.get(f"{url}/status/{code}")).status_code == code
        # one kept-alive connection per address (unix and unix-colon share one)
        assert sorted(pool.opened for pool in client.pools.values()) == [1, 1, 1, 1]


async def test_streaming_both_ways(served: Any) -> None:
    urls, _ = served
    payload = os.urandom(600_000)

    async def parts() -> Any:
        for i in range(0, len(payload), 64 * 1024):
            yield payload[i:i + 64 * 1024]

    async with trunkline.Client() as client:
        for kind, url in urls.items():
            got = bytearray()
            async with client.stream("POST", url + "/echo", content=parts()) as response:
                async for chunk in response.aiter_bytes():
                    got += chunk
            assert bytes(got) == payload, kind
            response = await client.get(url + "/stream?chunks=20&size=50000")
            assert len(response.content) == 1_000_000, kind


async def test_transport_override_keeps_host(served: Any, short_tmp: Path) -> None:
    assert served  # the server runs while this test does
    async with trunkline.Client() as client:
        for transport in (f"unix://{short_tmp}/s.sock", f"fifo://{short_tmp}/f.fifo"):
            echo = (await client.get("http://api.internal/h", transport=transport)).json()
            assert echo["host"] == "api.internal"


async def test_client_and_server_traces_share_an_id(served: Any) -> None:
    urls, server_tracer = served
    tracer = Tracer()
    async with trunkline.Client(tracer=tracer) as client:
        for url in urls.values():
            await client.get(url + "/traced")
    ids = {e.detail.get("trace_id") for e in server_tracer.events} - {None}
    assert tracer.trace_id in ids
