"""Calls by name on etcd while etcd goes away and comes back: ``serve --name`` keeps serving,
callers keep calling through their cached view (``discover`` marked stale), and the service
is registered again when etcd is back, even on a wiped (new, empty) cluster."""

from __future__ import annotations

import asyncio
import os

import pytest

import trunkline
from tests.registry.etcd_cluster import EtcdCluster
from tests.support.cli_helpers import Service
from trunkline.registry import Resolver, open_registry
from trunkline.trace.events import Step, Tracer


async def _call(names: Resolver) -> dict[str, object]:
    tracer = Tracer()
    stream = await trunkline.connect("svc://users", registry=names, tracer=tracer, timeout=5)
    stream.write(b"ping")
    assert await stream.readexactly(4) == b"ping"
    stream.close()
    return next(e.detail for e in tracer.events if e.step is Step.DISCOVER)


@pytest.mark.timeout(120)
async def test_calls_by_name_ride_out_an_etcd_outage(etcd_own: EtcdCluster) -> None:
    url = etcd_own.url()
    with Service(["serve", "echo", "--on", f"unix:@tl-bn-etcd-{os.getpid()}",
                  "--on", "tcp://127.0.0.1:0", "--name", "users", "--ttl", "3",
                  "--registry", url]) as server:
        server.wait_for_line(r"^registered users ", timeout=60)
        server.wait_ready(2, timeout=60)
        async with Resolver(open_registry(url), owns_store=True) as names:
            detail = await _call(names)
            assert detail["stale"] is False and detail["backend"] == url

            await asyncio.to_thread(etcd_own.stop)
            await names.wait_for(lambda: names.stale, 30)
            detail = await _call(names)  # from the cache, marked stale
            assert detail["stale"] is True and detail["chosen_kind"] == "abstract"

            await asyncio.to_thread(etcd_own.wipe)  # a new, empty cluster: the record is gone
            await asyncio.to_thread(etcd_own.start)
            # the service registers again, and the caller's view follows
            await names.wait_for(lambda: not names.stale and bool(names.instances("users")),
                                 60)
            [instance] = names.instances("users")
            assert instance.pid == server.proc.pid
            detail = await _call(names)
            assert detail["stale"] is False
        assert server.proc.poll() is None  # served all along
        assert server.stop() == 0
