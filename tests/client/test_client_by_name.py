"""``http+svc://NAME/path`` through ``trunkline.Client`` and the httpx transport,
``ws+svc://NAME/path`` through ``trunkline.websocket``; kill -9 of an instance: calls fail
over to the other at once, long before its record expires."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import trunkline
from tests.support.cli_helpers import Service
from trunkline.client import HttpxTransport
from trunkline.errors import ResolveError
from trunkline.registry import Resolver, open_registry
from trunkline.trace.events import Step, Tracer


def _serve(app: str, name: str, registry: str, *urls: str) -> Service:
    args = ["serve", app, "--name", name, "--registry", registry, "--ttl", "10"]
    for url in urls:
        args += ["--on", url]
    service = Service(args)
    service.wait_for_line(rf"^registered {name} ")
    service.wait_ready(len(urls))
    return service


@pytest.fixture
def two_instances(sqlite_url: str, short_tmp: Path) -> Iterator[list[Service]]:
    tag = f"tl-cbn-{os.getpid()}"
    services = [_serve("http-echo", "users", sqlite_url, f"unix:@{tag}-{n}",
                       "tcp://127.0.0.1:0") for n in (1, 2)]
    try:
        yield services
    finally:
        for service in services:
            service.kill()
            service.__exit__()


async def test_client_calls_by_name_over_the_abstract_socket(
        sqlite_url: str, two_instances: list[Service]) -> None:
    tracer = Tracer()
    async with trunkline.Client(registry=sqlite_url, tracer=tracer) as client:
        response = await client.get("http+svc://users/hello?x=1")
        assert response.status_code == 200
        echoed = response.json()
        assert echoed["path"] == "/hello" and ["host", "users"] in echoed["headers"]
        discover = next(e for e in tracer.events if e.step is Step.DISCOVER)
        assert discover.detail["chosen_kind"] == "abstract" and discover.detail["instances"] == 2
        # keep-alive: the next calls by name reuse the pooled connections (two instances
        # take turns, so at most one new connection each)
        for _ in range(6):
            assert (await client.get("http+svc://users/again")).status_code == 200
        assert sum(pool.opened for pool in client.pools.values()) == 2

    async with trunkline.Client(registry=sqlite_url, prefer="tcp", tracer=tracer) as client:
        tracer.events.clear()
        assert (await client.get("http+svc://users/")).status_code == 200
        discover = next(e for e in tracer.events if e.step is Step.DISCOVER)
        assert discover.detail["chosen_kind"] == "tcp"


async def test_kill_9_fails_over_to_the_other_instance_at_once(
        sqlite_url: str, two_instances: list[Service]) -> None:
    async with Resolver(open_registry(sqlite_url), owns_store=True) as names, \
            trunkline.Client(registry=names) as client:
        for _ in range(4):  # both instances have a pooled connection now
            assert (await client.get("http+svc://users/")).status_code == 200
        victim = two_instances[0]
        victim.kill()  # SIGKILL: no deregistration
        # the pooled connection to it breaks, its addresses refuse: every call from now
        # on must still succeed, on the other instance
        for _ in range(10):
            assert (await client.get("http+svc://users/")).status_code == 200
        answer = names.cached("users")
        assert answer is not None
        assert {c.instance.pid for c in answer.candidates} == {two_instances[1].proc.pid}
        # left out by the resolver's pid check, or already gone from the registry's view
        assert victim.proc.pid not in {c.instance.pid for c in answer.candidates}


async def test_no_instance_of_the_name(sqlite_url: str) -> None:
    async with trunkline.Client(registry=sqlite_url) as client:
        with pytest.raises(ResolveError, match="service 'ghost': no live instance"):
            await client.get("http+svc://ghost/")


async def test_httpx_transport_by_name(sqlite_url: str, two_instances: list[Service]) -> None:
    async with httpx.AsyncClient(transport=HttpxTransport(registry=sqlite_url)) as client:
        response = await client.get("http+svc://users/via-httpx")
        assert response.status_code == 200 and response.json()["path"] == "/via-httpx"


async def test_websocket_by_name(sqlite_url: str, two_instances: list[Service]) -> None:
    async with Resolver(open_registry(sqlite_url), owns_store=True) as names:
        tracer = Tracer()
        async with trunkline.websocket("ws+svc://users/chat", registry=names,
                                       tracer=tracer) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        discover = next(e for e in tracer.events if e.step is Step.DISCOVER)
        assert discover.detail["service"] == "users"
        assert discover.detail["chosen_kind"] == "abstract"
