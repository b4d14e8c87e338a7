"""The dashboard's test bench: a traced hello server writing server-side JSON lines into a
trace directory, registered under "hello" in a registry file of the test's own, a benchmark
directory holding one real result (the repository's pingpong JSON and its plot), and the
dashboard itself on trunkline's server at a loopback port."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import trunkline
from trunkline.dashboard import DashboardApp, DashboardConfig
from trunkline.server import AppServer, ServerConfig
from trunkline.trace import JsonLinesSink, Tracer

REPO = Path(__file__).resolve().parents[2]
QUIET = ServerConfig(access_log=False, lifespan="off")


@dataclass
class Bench:
    dashboard: AppServer
    app: DashboardApp
    hello: AppServer
    registry: str
    traces: Path
    bench: Path

    @property
    def origin(self) -> str:
        return "http://" + self.dashboard.urls[0].removeprefix("tcp://")

    @property
    def hello_url(self) -> str:
        return "http://" + self.hello.urls[0].removeprefix("tcp://")


async def hello_app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello\n"})  # type: ignore[operator]


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    traces, results = tmp_path / "traces", tmp_path / "bench"
    traces.mkdir()
    results.mkdir()
    for name in ("pingpong.json", "pingpong.png"):
        shutil.copy(REPO / "benchmarks" / "img" / name, results / name)
    registry = f"sqlite://{tmp_path / 'registry.db'}"
    sink = JsonLinesSink(traces / "server.jsonl")
    tracer = Tracer(sink, keep=False)
    app = DashboardApp(DashboardConfig(registry=registry, traces=traces, bench=results,
                                       poll_interval=0.05, check_host=True))
    try:
        async with AppServer(hello_app, "tcp://127.0.0.1:0", config=QUIET,
                             tracer=tracer) as hello, \
                trunkline.register("hello", hello.urls, protocol="http", registry=registry), \
                AppServer(app, "tcp://127.0.0.1:0",
                          config=ServerConfig(access_log=False, lifespan="on")) as dashboard:
            yield Bench(dashboard, app, hello, registry, traces, results)
    finally:
        sink.close()
