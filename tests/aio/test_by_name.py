"""``trunkline.connect("svc://NAME")`` and ``open_datagram("svc://NAME")``: the caller's best
address from the registry's cached view, a traced ``discover`` step, the next candidate when
one refuses, ``prefer=``, and a clear error when there is no instance."""

from __future__ import annotations

import os

import pytest

import trunkline
from trunkline.aio.by_name import aclose_shared_resolvers
from trunkline.errors import ResolveError
from trunkline.registry import Resolver, open_registry, register
from trunkline.trace.events import Step, Tracer


async def _echo(stream: trunkline.Stream) -> None:
    async for data in stream:
        stream.write(data)


async def _round_trip(stream: trunkline.Stream) -> bytes:
    stream.write(b"ping")
    reply = await stream.readexactly(4)
    stream.close()
    return reply


def _abstract(tag: str) -> str:
    return f"unix:@tl-byname-{os.getpid()}-{tag}"


async def test_connect_by_name_takes_the_abstract_socket_and_traces_discover(
        sqlite_url: str) -> None:
    server = await trunkline.serve(_echo, "tcp://127.0.0.1:0", _abstract("a"), name="users",
                                   registry=sqlite_url)
    async with server, Resolver(open_registry(sqlite_url), owns_store=True) as names:
        tracer = Tracer()
        stream = await trunkline.connect("svc://users", registry=names, tracer=tracer)
        assert await _round_trip(stream) == b"ping"
        [discover] = [e for e in tracer.events if e.step is Step.DISCOVER]
        assert discover.detail["chosen"] == server.urls[1] and discover.detail["chosen_kind"] == \
            "abstract"
        assert "same network namespace" in discover.detail["reason"]
        assert discover.detail["backend"] == sqlite_url and discover.detail["instances"] == 1
        assert discover.detail["cached"] is False and discover.detail["stale"] is False
        assert [r.split(" ")[0] for r in discover.detail["ranking"]] == [server.urls[1],
                                                                         server.urls[0]]
        connect = next(e for e in tracer.events if e.step is Step.CONNECT)
        assert discover.end_ns <= connect.start_ns  # the lookup comes first

        tracer = Tracer()  # the second call is served from the cache; prefer= moves TCP first
        stream = await trunkline.connect("svc://users", registry=names, tracer=tracer,
                                         prefer="tcp")
        assert await _round_trip(stream) == b"ping"
        [discover] = [e for e in tracer.events if e.step is Step.DISCOVER]
        assert discover.detail["cached"] is True and discover.detail["chosen"] == \
            server.urls[0]
        assert discover.detail["reason"].startswith("preferred (tcp)")


async def test_a_refusing_address_falls_through_to_the_next_instance(
        sqlite_url: str, short_tmp: object) -> None:
    dead = f"unix://{short_tmp}/nobody.sock"  # registered, but nothing listens there
    server = await trunkline.serve(_echo, "tcp://127.0.0.1:0", name="users",
                                   registry=sqlite_url)
    async with server, register("users", [dead], registry=sqlite_url), \
            Resolver(open_registry(sqlite_url), owns_store=True) as names:
        tracer = Tracer()
        stream = await trunkline.connect("svc://users", registry=names, tracer=tracer,
                                         timeout=5)
        assert await _round_trip(stream) == b"ping"
        steps = [e for e in tracer.events if e.step is Step.DISCOVER]
        assert steps[0].detail["chosen"] == dead  # a Unix path ranks before loopback TCP
        assert steps[1].detail["failed"] == dead and steps[1].detail["chosen"] == \
            server.urls[0]
        # marked failed: the next call goes straight to the live one
        answer = names.cached("users")
        assert answer is not None and [c.url for c in answer.candidates] == server.urls
        assert any(s.url == dead and "marked failed" in s.reason for s in answer.skipped)


async def test_no_instance_is_a_clear_resolve_error(sqlite_url: str) -> None:
    async with Resolver(open_registry(sqlite_url), owns_store=True) as names:
        with pytest.raises(ResolveError, match="service 'nobody': no live instance in "):
            await trunkline.connect("svc://nobody", registry=names)


async def test_connect_by_name_on_the_default_registry_and_datagrams() -> None:
    async def echo_datagram(data: bytes, source: object) -> bytes:
        return b"dgram:" + data

    server = await trunkline.serve(_echo, _abstract("s"), "udp://127.0.0.1:0",
                                   datagram_handler=echo_datagram, name="metrics")
    try:
        async with server:
            stream = await trunkline.connect("svc://metrics")  # the shared resolver
            assert await _round_trip(stream) == b"ping"
            tracer = Tracer()
            endpoint = await trunkline.open_datagram("svc://metrics", tracer=tracer)
            await endpoint.send(b"x")
            data, _ = await endpoint.recv()
            assert data == b"dgram:x"
            await endpoint.aclose()
            [discover] = [e for e in tracer.events if e.step is Step.DISCOVER]
            assert discover.detail["chosen"] == server.urls[1]  # the UDP one: datagrams
    finally:
        await aclose_shared_resolvers()
