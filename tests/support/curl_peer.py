"""One aiohttp server both ``trunkline call`` and real curl are sent to, so their requests and
exit statuses can be compared: it echoes what it received, redirects, compresses, fails on
cue. Runs in a thread with its own loop, so tests can run both commands as plain
subprocesses."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import subprocess
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")
TRUNKLINE = [sys.executable, "-m", "trunkline", "call"]


@dataclass
class Peer:
    base: str  # http://127.0.0.1:PORT
    port: int
    hits: Counter[str] = field(default_factory=Counter)


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({
        "method": request.method, "path": request.path, "query": request.query_string,
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body": body.decode("latin-1")})


def _app(peer: Peer) -> web.Application:
    async def redirect(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, headers={"Location": request.query["to"]},
                            text="moved\n")

    async def chain(request: web.Request) -> web.Response:  # /chain/N -> ... -> /echo
        left = int(request.match_info["n"])
        to = "/echo" if left == 0 else f"/chain/{left - 1}"
        return web.Response(status=302, headers={"Location": to})

    async def compressed(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        data = json.dumps({"words": ["compressed"] * 200}).encode()
        packed = gzip.compress(data) if kind == "gzip" else zlib.compress(data)
        return web.Response(body=packed, headers={"Content-Encoding": kind,
                                                  "Content-Type": "application/json"})

    async def flaky(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        peer.hits[key] += 1
        if peer.hits[key] <= int(request.query.get("fail", "1")):
            return web.Response(status=int(request.query.get("status", "503")), text="busy\n")
        return web.Response(text="ok\n")

    async def document(request: web.Request) -> web.Response:
        return web.json_response({"name": "ada", "langs": ["en", "fr"], "n": 1})

    async def blob(request: web.Request) -> web.Response:
        size = int(request.query.get("size", "1000"))
        return web.Response(body=bytes(range(256)) * (size // 256) + b"x" * (size % 256))

    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_route("*", "/redirect/{code}", redirect)
    app.router.add_route("*", "/chain/{n}", chain)
    app.router.add_get("/compressed/{kind}", compressed)
    app.router.add_route("*", "/flaky/{key}", flaky)
    app.router.add_get("/doc.json", document)
    app.router.add_get("/files/{name}", blob)
    return app


@contextmanager
def curl_peer(host: str = "127.0.0.1") -> Iterator[Peer]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}
    peer = Peer("", 0)

    async def start() -> None:
        runner = web.AppRunner(_app(peer), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        peer.port, peer.base = port, f"http://{host}:{port}"
        holder["runner"] = runner
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(20)
    try:
        yield peer
    finally:
        runner = holder["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(20)
        loop.close()


def both(args: Sequence[str], *, input: bytes | None = None, cwd: str | None = None,
         timeout: float = 30) -> tuple[subprocess.CompletedProcess[bytes],
                                       subprocess.CompletedProcess[bytes]]:
    """Run ``trunkline call ARGS`` and ``curl ARGS``: (ours, curl's)."""
    assert CURL is not None
    ours = subprocess.run([*TRUNKLINE, *args], input=input, capture_output=True, cwd=cwd,
                          timeout=timeout, check=False)
    theirs = subprocess.run([CURL, *args], input=input, capture_output=True, cwd=cwd,
                            timeout=timeout, check=False)
    return ours, theirs
