"""httpx.Client (sync) on trunkline's transport, against a real ``trunkline serve echo`` on
TCP and on a Unix socket: requests, JSON, streamed bodies both ways, keep-alive, errors as
httpx's, and the transport's loop thread gone after close."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.support.cli_helpers import Service, free_port
from trunkline.client import HttpxTransport


@pytest.fixture
def echo(short_tmp: Path) -> Iterator[tuple[str, str]]:
    """(http://127.0.0.1:PORT, http+unix://…) of one ``trunkline serve echo``."""
    path = short_tmp / "echo.sock"
    with Service(["serve", "echo", "--on", "tcp://127.0.0.1:0", "--on", f"unix://{path}",
                  "-q"]) as server:
        tcp, _ = server.wait_ready(2)
        yield tcp.replace("tcp://", "http://"), f"http+unix://{quote(str(path), safe='')}"
        assert server.stop() == 0


def loop_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "trunkline-httpx"]


def test_sync_httpx_over_tcp_and_a_unix_socket(echo: tuple[str, str]) -> None:
    tcp, unix = echo
    before = loop_threads()
    with httpx.Client(transport=HttpxTransport(), timeout=20) as client:
        for base, kind in ((tcp, "tcp"), (unix, "unix")):
            r = client.get(base + "/users", params={"page": 2}, headers={"X-Test": "1"})
            assert r.status_code == 200 and r.http_version == "HTTP/1.1"
            seen = r.json()
            assert (seen["method"], seen["path"], seen["query"]) == ("GET", "/users", "page=2")
            assert ["x-test", "1"] in seen["headers"]
            assert seen["transport"]["kind"] == kind
            r = client.post(base + "/j", json={"a": 1})
            assert json.loads(r.json()["body"]) == {"a": 1}
        # keep-alive through trunkline's pool: the same client port twice
        ports = {tuple(client.get(tcp + "/again").json()["client"]) for _ in range(2)}
        assert len(ports) == 1
        # a streamed upload (a generator: chunked) and a streamed download
        payload = bytes(range(256)) * 4096

        def parts() -> Iterator[bytes]:
            for i in range(0, len(payload), 100_000):
                yield payload[i:i + 100_000]

        with client.stream("POST", unix + "/up", content=parts()) as r:
            assert r.status_code == 200
            pieces = list(r.iter_bytes())
        seen = json.loads(b"".join(pieces))
        assert seen["body_encoding"] == "base64" and base64.b64decode(seen["body"]) == payload
        assert len(loop_threads()) == len(before) + 1  # one loop thread for the sync side
    assert loop_threads() == before  # closed with the client


def test_sync_httpx_errors_are_httpx_errors(short_tmp: Path) -> None:
    with httpx.Client(transport=HttpxTransport(), timeout=5) as client:
        with pytest.raises(httpx.ConnectError, match="refused"):
            client.get(f"http://127.0.0.1:{free_port()}/")
        missing = quote(str(short_tmp / "none.sock"), safe="")
        with pytest.raises(httpx.ConnectError, match="no such file"):
            client.get(f"http+unix://{missing}/")


@pytest.mark.asyncio
async def test_sync_httpx_from_a_thread_running_an_event_loop(echo: tuple[str, str]) -> None:
    """Sync code called from async code (blocking it, as any sync call does) still works:
    the transport's own loop runs on its own thread."""
    tcp, _ = echo
    with httpx.Client(transport=HttpxTransport(), timeout=20) as client:
        assert client.get(tcp + "/from-async").json()["path"] == "/from-async"
