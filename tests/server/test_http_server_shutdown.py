"""Graceful shutdown of a real server process: SIGTERM while slow requests are in flight."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

import trunkline
from tests.support.http_server_support import Raw
from trunkline.errors import TransportError

SERVER = r'''
import asyncio, sys
from trunkline._loop import run
from trunkline.server import ServerConfig, serve_app

def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                say("lifespan shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    n = int(scope["query_string"] or b"0")
    say(f"started {n}")
    await asyncio.sleep(0.3 * (n + 1))  # the work in flight when SIGTERM comes
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done %d" % n})

run(serve_app(app, *sys.argv[1:], config=ServerConfig(shutdown_timeout=10),
              on_ready=lambda urls: say("ready " + " ".join(urls))))
say("exited cleanly")
'''


async def test_sigterm_lets_in_flight_requests_finish(short_tmp: Path) -> None:
    script = short_tmp / "server.py"
    script.write_text(SERVER)
    sock = short_tmp / "s.sock"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), "tcp://127.0.0.1:0", f"unix://{sock}",
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
            assert line.startswith("ready "), line
            tcp_url, unix_url = line.split()[1:]
            clients = []
            for n in range(4):
                raw = await Raw.open(tcp_url if n % 2 else unix_url)
                await raw.send(b"GET /?%d HTTP/1.1\r\nHost: t\r\n\r\n" % n)
                clients.append(raw)
            started = {(await proc.stdout.readline()).decode().strip() for _ in range(4)}
            assert started == {f"started {n}" for n in range(4)}

            proc.send_signal(signal.SIGTERM)
            first = await clients[0].read_response()
            assert first[0] == 200 and first[2] == b"done 0"
            assert first[1]["connection"] == "close"
            # three requests are still running, but nobody new gets in
            with pytest.raises((TransportError, OSError)):
                stream = await trunkline.connect(tcp_url, timeout=5)
                await stream.aclose()
            assert not sock.exists()
            for n, raw in enumerate(clients[1:], start=1):
                status, headers, body = await raw.read_response()
                assert (status, body) == (200, b"done %d" % n)
                await raw.read_until_closed()
                assert raw.closed
            rest = (await proc.stdout.read()).decode().split("\n")
            assert "lifespan shutdown" in rest and "exited cleanly" in rest
            assert await proc.wait() == 0
    finally:
        for raw in clients if "clients" in locals() else []:
            await raw.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
