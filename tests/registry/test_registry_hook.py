"""``trunkline.serve(..., name=)`` and ``registration_hook``: the host's bound addresses are
registered while it serves and deregistered when it stops; a bad name is refused before
anything is bound; an unreachable registry does not stop the service."""

from __future__ import annotations

import pytest

import trunkline
from trunkline.errors import AddressError
from trunkline.registry import open_registry
from trunkline.registry.hook import registration_hook


async def _echo(stream: trunkline.Stream) -> None:
    async for data in stream:
        stream.write(data)


async def test_serve_name_registers_while_serving(sqlite_url: str) -> None:
    store = open_registry(sqlite_url)
    try:
        server = await trunkline.serve(_echo, "tcp://127.0.0.1:0", "unix:@tl-hook-test",
                                       name="users", meta={"v": "1"}, registry=sqlite_url)
        async with server:
            [instance] = await store.list("users")
            assert list(instance.urls) == server.urls and instance.protocol == "raw"
            assert not instance.urls[0].endswith(":0") and instance.meta == {"v": "1"}
        assert await store.list("users") == []
    finally:
        await store.close()


async def test_serve_bad_name_is_refused_before_binding() -> None:
    with pytest.raises(AddressError, match="service name 'no_underscores'"):
        await trunkline.serve(_echo, "tcp://127.0.0.1:0", name="no_underscores")


async def test_unreachable_registry_keeps_serving() -> None:
    # nothing listens on port 1 of 127.0.0.1: the etcd client cannot connect
    hook = registration_hook("users", registry="etcd://127.0.0.1:1")
    server = await trunkline.serve(_echo, "tcp://127.0.0.1:0", hooks=[hook])
    async with server:
        stream = await trunkline.connect(server.urls[0])
        stream.write(b"ping")
        assert await stream.read(4) == b"ping"
        stream.close()
