"""Apps on the server: FastAPI and Starlette unchanged over UDS and FIFO, the built-ins
(hello, echo, static, demo), the ``module:app`` loader and lifespan."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel

from tests.support.http_server_support import Raw, exchange, running, statuses
from trunkline.apps import StaticApp, demo_app
from trunkline.server import AppLoadError, ServerConfig, load_app
from trunkline.server.cycle import Receive, Scope, Send
from trunkline.server.lifespan import LifespanError

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])


class Item(BaseModel):
    name: str
    qty: int = 1


def fastapi_app() -> Any:
    from contextlib import asynccontextmanager

    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        events.append("startup")
        yield {"greeting": "hi"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    app.state.events = events

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, request: Request) -> dict[str, Any]:
        ext = request.scope["extensions"]["trunkline.transport"]
        return {"id": item_id, "greeting": request.state.greeting, "kind": ext["kind"],
                "uid": ext["credentials"]["uid"]}

    @app.post("/items", status_code=201)
    async def create(item: Item) -> Item:
        return item

    return app


async def test_fastapi_over_uds_and_fifo(short_tmp: Path) -> None:
    app = fastapi_app()
    sock, fifo = short_tmp / "api.sock", short_tmp / "api.fifo"
    async with running(app, f"unix://{sock}", f"fifo://{fifo}", lifespan="on"):
        assert app.state.events == ["startup"]
        transport = httpx.AsyncHTTPTransport(uds=str(sock))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            r = await client.get("/items/7")
            assert r.json() == {"id": 7, "greeting": "hi", "kind": "unix", "uid": os.getuid()}
            r = await client.post("/items", json={"name": "bolt", "qty": 3})
            assert r.status_code == 201 and r.json() == {"name": "bolt", "qty": 3}
            r = await client.post("/items", json={"qty": "x"})
            assert r.status_code == 422
        raw = await Raw.open(f"fifo://{fifo}")
        await raw.send(b"GET /items/3 HTTP/1.1\r\nHost: api\r\n\r\n")
        status, _, body = await raw.read_response()
        assert status == 200 and json.loads(body)["kind"] == "fifo"
        await raw.close()
        raw = await Raw.open(f"unix://{sock}")  # a raw socket speaks to it too
        await raw.send(b'POST /items HTTP/1.1\r\nHost: api\r\nContent-Type: application/json'
                       b'\r\nContent-Length: 15\r\n\r\n{"name": "nut"}')
        status, _, body = await raw.read_response()
        assert status == 201 and json.loads(body) == {"name": "nut", "qty": 1}
        await raw.close()
    assert app.state.events == ["startup", "shutdown"]


async def test_starlette_streaming_and_background(short_tmp: Path) -> None:
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.responses import PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    done: list[str] = []

    async def stream(request: Request) -> StreamingResponse:
        async def numbers() -> Any:
            for i in range(5):
                yield f"{i}\n"
        return StreamingResponse(numbers(), media_type="text/plain")

    async def upload(request: Request) -> PlainTextResponse:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return PlainTextResponse(str(size), background=BackgroundTask(done.append, "bg"))

    app = Starlette(routes=[Route("/stream", stream), Route("/upload", upload,
                                                             methods=["POST"])])
    sock = short_tmp / "s.sock"
    async with running(app, f"unix://{sock}"):
        transport = httpx.AsyncHTTPTransport(uds=str(sock))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            r = await client.get("/stream")
            assert r.text == "0\n1\n2\n3\n4\n" and r.headers["transfer-encoding"] == "chunked"

            async def body() -> Any:
                for _ in range(10):
                    yield b"z" * 10_000

            r = await client.post("/upload", content=body())
            assert r.text == "100000"
    assert done == ["bg"]


# --------------------------------------------------------------------------- built-ins


async def test_static_files(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "docs" / "index.html").write_text("docs")
    (root / "style.css").write_text("body{}")
    (root / "data.json").write_text("{}")
    (root / "blob.bin").write_bytes(bytes(range(256)) * 2000)
    (tmp_path / "secret.txt").write_text("do not serve")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    async with running(StaticApp(root)) as srv:
        base = "http://" + srv.urls[0].split("://")[1]
        async with httpx.AsyncClient(base_url=base) as client:
            r = await client.get("/")
            assert r.text == "<h1>home</h1>"
            assert r.headers["content-type"] == "text/html; charset=utf-8"
            assert (await client.get("/style.css")).headers["content-type"] == \
                "text/css; charset=utf-8"
            assert (await client.get("/data.json")).headers["content-type"].startswith(
                "application/json")
            r = await client.get("/blob.bin")
            assert r.content == bytes(range(256)) * 2000
            assert r.headers["content-type"] == "application/octet-stream"
            r = await client.head("/blob.bin")
            assert r.headers["content-length"] == str(512_000) and r.content == b""
            r = await client.get("/docs")
            assert r.status_code == 308 and r.headers["location"] == "/docs/"
            assert (await client.get("/docs/")).text == "docs"
            assert (await client.get("/missing")).status_code == 404
            assert (await client.get("/escape")).status_code == 404  # symlink out of root
            assert (await client.post("/")).status_code == 405
        for target in (b"/../secret.txt", b"/%2e%2e/secret.txt", b"/docs/..%2f..%2fsecret.txt",
                       b"/..%5csecret.txt", b"//etc/passwd", b"/docs/../../secret.txt"):
            received, _ = await exchange(srv.urls[0], b"GET " + target +
                                         b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert statuses(received) in ([404], [400]), target
            assert b"do not serve" not in received and b"root:" not in received


async def test_demo_users_api() -> None:
    async with running(demo_app()) as srv:
        base = "http://" + srv.urls[0].split("://")[1]
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/users")).json() == [
                {"id": 1, "name": "ada"}, {"id": 2, "name": "grace"}]
            r = await client.post("/users", json={"name": "linus"})
            assert r.status_code == 201 and r.json() == {"id": 3, "name": "linus"}
            assert r.headers["location"] == "/users/3"
            assert (await client.get("/users/3")).json() == {"id": 3, "name": "linus"}
            assert (await client.get("/users/99")).status_code == 404
            assert (await client.post("/users", content=b"nope")).status_code == 400
            assert (await client.delete("/users")).status_code == 405


async def test_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "proj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "web.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'http':\n"
        "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "        await send({'type': 'http.response.body', 'body': b'from module'})\n"
        "def make():\n"
        "    return app\n"
        "not_an_app = 3\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    app = load_app("proj.web:app")
    assert load_app("proj.web:make", factory=True) is app
    async with running(app) as srv:
        raw = await Raw.open(srv.urls[0])
        await raw.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await raw.read_response())[2] == b"from module"
        await raw.close()
    assert isinstance(load_app(f"static {tmp_path}"), StaticApp)
    assert isinstance(load_app("static", [str(tmp_path)]), StaticApp)
    for bad in ("nope", "proj.web:missing", "proj.web:not_an_app", "no_such_mod:app",
                "static", f"hello {tmp_path}", "static /definitely/not/here"):
        with pytest.raises(AppLoadError):
            load_app(bad)


async def test_lifespan_state_and_failure() -> None:
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    log.append("startup")
                    await send({"type": "lifespan.startup.complete"})
                else:
                    log.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = scope["state"]["db"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async with running(app) as srv:
        raw = await Raw.open(srv.urls[0])
        await raw.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await raw.read_response())[2] == b"connected"
        await raw.close()
    assert log == ["startup", "shutdown"]

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    from trunkline.server import AppServer
    server = AppServer(failing, "tcp://127.0.0.1:0", config=ServerConfig(lifespan="on"))
    with pytest.raises(LifespanError, match="no database"):
        await server.start()
    assert server.listeners == []


async def test_cli_registration() -> None:
    from trunkline.address import parse_address
    from trunkline.apps.cli_apps import register_http_apps
    from trunkline.cli.serve import ServeApp
    from trunkline.transport import ListenOptions

    registered: dict[str, Any] = {}
    loaders: list[Any] = []
    register_http_apps(lambda app: registered.__setitem__(app.name, app), loaders, ServeApp)
    assert set(registered) == {"hello", "http-echo", "static", "demo", "chat"}
    assert registered["static"].usage == "static DIR"
    server = await registered["hello"].start((), [parse_address("tcp://127.0.0.1:0")],
                                             ListenOptions())
    raw = await Raw.open(server.urls[0])
    await raw.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await raw.read_response())[2] == b"Hello, world!\n"
    await raw.close()
    server.close()
    await server.wait_closed(1.0)
    assert loaders[0]("proj.web:app", None, False) is not None
    assert loaders[0]("hello", None, False) is None
