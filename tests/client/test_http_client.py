"""trunkline.Client against real servers: uvicorn and aiohttp.web, over TCP and Unix sockets."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import trunkline
from tests.client.test_http_client_peers import PEERS, Peer, aiohttp_peer, peer, uvicorn_peer
from trunkline.client import Limits, PoolTimeoutError, Timeout
from trunkline.errors import TrunklineError
from trunkline.trace import Step, Tracer


@pytest.fixture(params=PEERS)
async def server(request: pytest.FixtureRequest, short_tmp: Path) -> Any:
    async with peer(request.param, short_tmp) as p:
        yield p


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_methods(server: Peer, method: str) -> None:
    async with trunkline.Client() as client:
        response = await client.request(method, server.url + "/things/1")
        assert response.status_code == 200, response.text
        echo = response.json()
        assert echo["method"] == method
        assert echo["path"] == "/things/1"
        assert response.headers["content-type"].startswith("application/json")


async def test_head_has_no_body_and_keeps_the_connection(server: Peer) -> None:
    async with trunkline.Client() as client:
        head = await client.head(server.url + "/x")
        assert head.status_code == 200
        assert head.content == b""
        after = await client.get(server.url + "/x")  # the connection is still in step
        assert after.json()["method"] == "GET"
        assert len(server.stats.connections) == 1


async def test_json_query_and_headers(server: Peer) -> None:
    async with trunkline.Client(headers={"X-Client": "a"}) as client:
        response = await client.post(server.url + "/items?fixed=1", params={"q": "a b", "n": 2},
                                     json={"name": "ada", "tags": ["x"]},
                                     headers={"X-Request": "b"})
        echo = response.json()
    assert echo["query"] == {"fixed": ["1"], "q": ["a b"], "n": ["2"]}
    assert echo["headers"]["content-type"] == "application/json"
    assert echo["headers"]["x-client"] == "a" and echo["headers"]["x-request"] == "b"
    assert echo["headers"]["user-agent"].startswith("trunkline/")
    assert echo["body_len"] == len(b'{"name":"ada","tags":["x"]}')


async def test_form_data_and_text(server: Peer) -> None:
    async with trunkline.Client() as client:
        response = await client.post(server.url + "/f", data={"a": "1", "b": "x y"})
        echo = response.json()
        assert echo["headers"]["content-type"] == "application/x-www-form-urlencoded"
        assert echo["body_len"] == len("a=1&b=x+y")
        assert '"method": "POST"' in response.text


async def test_status_codes_and_raise_for_status(server: Peer) -> None:
    async with trunkline.Client() as client:
        for code in (204, 304, 404, 500):
            response = await client.get(f"{server.url}/status/{code}")
            assert response.status_code == code
            assert response.content == b""
        with pytest.raises(trunkline.HTTPStatusError) as info:
            response.raise_for_status()
        assert "500" in str(info.value) and info.value.response is response
        assert len(server.stats.connections) == 1  # 204 and 304 end without a body


async def test_chunked_streaming_upload_and_download(server: Peer) -> None:
    async def parts() -> Any:
        for i in range(20):
            yield bytes([97 + i]) * 1000

    async with trunkline.Client() as client:
        response = await client.put(server.url + "/up", content=parts())
        echo = response.json()
        assert echo["body_len"] == 20_000
        assert echo["headers"].get("transfer-encoding") == "chunked"
        expected = b"".join(bytes([97 + i]) * 1000 for i in range(20))
        assert echo["body_sha256"] == hashlib.sha256(expected).hexdigest()

        seen = []
        async with client.stream("GET", server.url + "/stream?chunks=50&size=4096") as r:
            assert r.status_code == 200
            async for chunk in r.aiter_bytes():
                seen.append(chunk)
        body = b"".join(seen)
        assert len(body) == 50 * 4096
        assert body[:4096] == b"A" * 4096
        # the streamed response was read to the end, so its connection was kept
        await client.get(server.url + "/again")
        assert len(server.stats.connections) == 1


async def test_large_bodies_both_ways(server: Peer) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    async with trunkline.Client() as client:
        echo = (await client.post(server.url + "/big", content=payload)).json()
        assert echo["body_len"] == len(payload)
        assert echo["body_sha256"] == hashlib.sha256(payload).hexdigest()
        response = await client.get(server.url + "/stream?chunks=64&size=65536")
        assert len(response.content) == 64 * 65536

        async def parts() -> Any:
            for i in range(0, len(payload), 256 * 1024):
                yield payload[i:i + 256 * 1024]

        # a streamed upload echoed back as a streamed download, read piece by piece
        got = bytearray()
        async with client.stream("POST", server.url + "/echo", content=parts()) as r:
            async for chunk in r.aiter_bytes():
                got += chunk
        assert bytes(got) == payload


async def test_keep_alive_reuse(server: Peer) -> None:
    async with trunkline.Client() as client:
        for i in range(10):
            assert (await client.get(f"{server.url}/n/{i}")).status_code == 200
        (pool,) = client.pools.values()
        assert pool.opened == 1
    assert len(server.stats.connections) == 1
    assert server.stats.requests == 10


async def test_pool_limit_caps_connections(server: Peer) -> None:
    async with trunkline.Client(limits=Limits(max_connections=2)) as client:
        responses = await asyncio.gather(*(client.get(server.url + "/gate") for _ in range(6)))
        assert all(r.status_code == 200 for r in responses)
        (pool,) = client.pools.values()
        assert pool.opened == 2
    assert server.stats.max_inflight == 2
    assert len(server.stats.connections) == 2


async def test_pool_timeout_is_a_timeout_error(short_tmp: Path) -> None:
    async with aiohttp_peer() as p, trunkline.Client(
            limits=Limits(max_connections=1), timeout=Timeout(pool=0.2)) as client:
        blocker = asyncio.create_task(client.get(p.url + "/gate"))  # waits for a second one
        await asyncio.sleep(0)
        with pytest.raises(PoolTimeoutError) as info:
            await client.get(p.url + "/other")
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, TrunklineError)
        p.stats.gate.set()
        assert (await blocker).status_code == 200


async def test_streamed_response_closed_early_drops_its_connection(server: Peer) -> None:
    async with trunkline.Client() as client:
        async with client.stream("GET", server.url + "/stream?chunks=400&size=65536") as r:
            async for _ in r.aiter_bytes():
                break
        with pytest.raises(TrunklineError):
            _ = r.content
        assert (await client.get(server.url + "/next")).status_code == 200
        (pool,) = client.pools.values()
        assert pool.opened == 2


async def test_tracer_records_the_client_side(server: Peer) -> None:
    tracer = Tracer()
    async with trunkline.Client(tracer=tracer) as client:
        first = await client.get(server.url + "/t")
        await client.post(server.url + "/t", content=b"abc")
    steps = [e.step for e in tracer.events]
    for step in (Step.CONNECT, Step.REQUEST_HEADERS, Step.REQUEST_BODY, Step.FIRST_BYTE,
                 Step.RESPONSE_DONE, Step.RELEASE, Step.REUSE):
        assert step in steps, step
    assert all(e.side == "client" for e in tracer.events)
    done = [e for e in tracer.events if e.step is Step.RESPONSE_DONE]
    assert done[0].detail["status"] == 200 and done[0].detail["bytes"] == len(first.content)
    assert first.json()["headers"]["x-trunkline-trace-id"] == first.trace_id


async def test_per_request_tracer_and_close_event(short_tmp: Path) -> None:
    tracer = Tracer()
    async with aiohttp_peer() as p:
        client = trunkline.Client()
        await client.get(p.url + "/plain")
        response = await client.get(p.url + "/traced", tracer=tracer)
        assert "x-trunkline-trace-id" in response.json()["headers"]
        await client.get(p.url + "/plain")
        await client.aclose()
    assert [e.step for e in tracer.events].count(Step.RESPONSE_DONE) == 1


# --------------------------------------------------------------------------- URL forms


async def test_every_unix_url_form_and_transport_override(short_tmp: Path) -> None:
    path = str(short_tmp / "forms.sock")
    async with aiohttp_peer(uds=path) as p, trunkline.Client() as client:
        r1 = await client.get(f"http+unix://{quote(path, safe='')}/a?x=1")
        assert r1.json()["path"] == "/a" and r1.json()["query"] == {"x": ["1"]}
        assert r1.json()["host"] == "localhost"
        r2 = await client.get(f"http://unix:{path}:/b")
        assert r2.json()["path"] == "/b"
        # transport= keeps the URL's Host header, as curl --unix-socket does
        r3 = await client.get("http://api.internal:8080/c", transport=f"unix://{path}")
        assert r3.json()["host"] == "api.internal:8080" and r3.json()["path"] == "/c"
        # one pool per resolved address: all three forms share one kept-alive connection
        assert len(p.stats.connections) == 1 and len(client.pools) == 1
    async with aiohttp_peer(uds=path) as p, trunkline.Client(
            transport=f"unix://{path}") as client:
        r4 = await client.get("http://users.svc/d")
        assert r4.json()["host"] == "users.svc"


async def test_abstract_unix_socket(short_tmp: Path) -> None:
    name = f"trunkline-test-{os.getpid()}-{id(short_tmp)}"
    async with aiohttp_peer(uds="\0" + name) as p, trunkline.Client() as client:
        response = await client.get(f"{p.url}/abs")
        assert response.json()["path"] == "/abs"
        response = await client.get("http://svc/abs2", transport=f"unix:@{name}")
        assert response.json()["host"] == "svc"


async def test_uvicorn_uds_with_base_url(short_tmp: Path) -> None:
    path = str(short_tmp / "base.sock")
    async with uvicorn_peer(uds=path), trunkline.Client(
            base_url=f"http+unix://{quote(path, safe='')}/api") as client:
        response = await client.get("/users")
        assert response.json()["path"] == "/api/users"


def _has_ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_loopback() -> None:
    async with aiohttp_peer(host="::1") as p, trunkline.Client() as client:
        response = await client.get(p.url + "/six")
        assert response.json()["host"].startswith("[::1]:")


async def test_bad_header_is_refused_before_sending() -> None:
    async with trunkline.Client() as client:
        with pytest.raises(ValueError, match="CR, LF"):
            await client.get("http://127.0.0.1:9/", headers={"X-A": "1\r\nX-B: 2"})
        with pytest.raises(trunkline.errors.AddressError):
            await client.get("ftp://127.0.0.1/")


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_http_over_fifo(short_tmp: Path) -> None:
    """aiohttp's low-level server on trunkline's FIFO listener: http+fifo URLs and transport=."""
    from aiohttp import web

    from trunkline.address import FifoAddress
    from trunkline.transport import listen

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        return web.json_response({"method": request.method, "path": request.path,
                                  "host": request.host, "body_len": len(body)})

    path = str(short_tmp / "http.fifo")
    listener = await listen(FifoAddress(path), web.Server(handler))
    try:
        async with trunkline.Client() as client:
            url = f"http+fifo://{quote(path, safe='')}"
            for i in range(3):
                echo = (await client.post(f"{url}/p{i}", content=b"x" * 200_000)).json()
                assert echo == {"method": "POST", "path": f"/p{i}", "host": "localhost",
                                "body_len": 200_000}
            echo = (await client.get("http://svc.local/q", transport=f"fifo://{path}")).json()
            assert echo["host"] == "svc.local"
            assert [pool.opened for pool in client.pools.values()] == [1]
    finally:
        listener.close()
        await listener.wait_closed()


@pytest.mark.parametrize(("url", "host", "target"), [
    ("http://unix:8080/p", "unix:8080", "/p"),  # a host named unix, with a port
    ("http://h#frag", "h", "/"),  # the fragment stays home even with no path
    ("http://h/p?q=1#frag", "h", "/p?q=1"),
])
def test_http_url_edge_forms(url: str, host: str, target: str) -> None:
    parsed = trunkline.parse_http_url(url)
    assert (parsed.host, parsed.target) == (host, target)


async def test_pool_survives_cancelled_waiters(short_tmp: Path) -> None:
    async with aiohttp_peer(uds=str(short_tmp / "c.sock")) as p, trunkline.Client(
            limits=Limits(max_connections=3)) as client:
        tasks = [asyncio.create_task(client.get(f"{p.url}/n/{i}")) for i in range(40)]
        await asyncio.sleep(0)  # let them all queue up on the pool
        for task in tasks[::4]:
            task.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        ok = [r for r in done if isinstance(r, trunkline.Response)]
        assert len(ok) >= 30 and all(r.status_code == 200 for r in ok)
        assert all(isinstance(r, trunkline.Response | asyncio.CancelledError) for r in done)
        (pool,) = client.pools.values()
        assert pool.open_count <= 3 and pool.open_count == len(pool.idle)
        assert (await client.get(f"{p.url}/after")).status_code == 200


async def test_slow_stream_reader_pauses_the_socket(short_tmp: Path) -> None:
    """A streamed body that is not read stops being read from the socket (memory stays
    bounded), and the server's writes wait; reading on lets everything through."""
    from aiohttp import web

    from trunkline.client.models import STREAM_HIGH_WATER

    finished = asyncio.Event()
    total = 32 * 1024 * 1024

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = total
        await response.prepare(request)
        block = b"z" * (1024 * 1024)
        for _ in range(total // len(block)):
            await response.write(block)
        finished.set()
        return response

    app = web.Application()
    app.router.add_get("/big", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    path = str(short_tmp / "slow.sock")
    await web.UnixSite(runner, path).start()
    try:
        async with trunkline.Client() as client, client.stream(
                "GET", "http://x/big", transport=f"unix://{path}") as response:
            chunks = response.aiter_bytes()
            received = len(await chunks.__anext__())
            with pytest.raises(TimeoutError):  # the server cannot finish: we stopped reading
                await asyncio.wait_for(asyncio.shield(finished.wait()), 0.5)
            assert response._buffered <= STREAM_HIGH_WATER + 256 * 1024
            async for chunk in chunks:
                received += len(chunk)
            assert received == total and finished.is_set()
    finally:
        await runner.cleanup()


async def test_file_object_body_is_streamed(tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    data = os.urandom(700_000)
    blob.write_bytes(data)
    async with aiohttp_peer() as p, trunkline.Client() as client:
        with blob.open("rb") as f:
            echo = (await client.put(p.url + "/file", content=f,
                                     headers={"Content-Length": str(len(data))})).json()
        assert echo["body_sha256"] == hashlib.sha256(data).hexdigest()
        assert "transfer-encoding" not in echo["headers"]
        with blob.open("rb") as f:
            echo = (await client.put(p.url + "/file", content=f)).json()
        assert echo["body_len"] == len(data)
        assert echo["headers"]["transfer-encoding"] == "chunked"
