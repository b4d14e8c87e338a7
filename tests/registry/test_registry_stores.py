"""The store interface on both real backends (a SQLite file in a temp dir, a real etcd):
registration, liveness, duplicates, many processes at once, kill -9, watching."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.registry.workers import Worker
from trunkline.errors import DuplicateInstanceError
from trunkline.registry import Resolver, make_instance, open_registry, register


def abstract(tag: str) -> str:
    return f"unix:@tl-test-{tag}-{os.urandom(4).hex()}"


async def test_register_list_deregister(registry_url: str) -> None:
    store = open_registry(registry_url)
    try:
        urls = [abstract("a"), "tcp://127.0.0.1:4000"]
        async with register("users", urls, protocol="http", meta={"version": "1.2"},
                            registry=store) as registration:
            listed = await store.list("users")
            assert [i.id for i in listed] == [registration.instance.id]
            got = listed[0]
            assert got.urls == tuple(urls)
            assert (got.protocol, got.meta, got.pid) == ("http", {"version": "1.2"},
                                                         os.getpid())
            assert got.host == registration.instance.host
            assert await store.list("other") == []
            assert await store.heartbeat(registration.instance)
        assert await store.list() == []
    finally:
        await store.close()


async def test_a_live_duplicate_instance_id_is_refused(registry_url: str) -> None:
    first = register("users", [abstract("one")], registry=registry_url, instance_id="users-1")
    async with first:
        with Worker(["hold", registry_url, "users"], env={"INSTANCE_ID": "users-1"}) as other:
            assert other.finish() == 1
            assert "DuplicateInstanceError" in "\n".join(other.err)
            assert "instance id 'users-1' of service 'users' is already registered by pid " \
                f"{os.getpid()}" in "\n".join(other.err)
        with pytest.raises(DuplicateInstanceError, match="users-1"):
            async with register("users", [abstract("two")], registry=registry_url,
                                instance_id="users-1"):
                pass
        # the same id under another service name is another instance
        async with register("billing", [abstract("three")], registry=registry_url,
                            instance_id="users-1"):
            pass
    # once the holder is gone, the id is free again
    async with register("users", [abstract("four")], registry=registry_url,
                        instance_id="users-1"):
        pass


async def test_the_id_of_a_killed_instance_can_be_taken_over(registry_url: str) -> None:
    with Worker(["hold", registry_url, "users"], env={"INSTANCE_ID": "users-7", "TTL": "30"}
                ) as holder:
        holder.line("registered users-7")
        holder.kill9()
    # its record is still there (TTL 30 s), but its process is gone: pid check says dead
    async with register("users", [abstract("new")], registry=registry_url,
                        instance_id="users-7") as registration:
        store = open_registry(registry_url)
        try:
            [instance] = await store.list("users")
            assert instance.pid == os.getpid() == registration.instance.pid
        finally:
            await store.close()


@pytest.mark.timeout(120)
async def test_50_processes_registering_at_once_lose_nothing(registry_url: str) -> None:
    count = 50
    with Worker(["burst", registry_url, "crowd", str(count)], env={"TTL": "30"}) as burst:
        ids = {burst.line(r"registered (\S+)", timeout=90).group(1) for _ in range(count)}
        assert len(ids) == count
        store = open_registry(registry_url)
        try:
            listed = await store.list("crowd")
            assert {i.id for i in listed} == ids
            assert len({i.pid for i in listed}) == count  # 50 separate processes
            assert burst.finish(timeout=90) == 0
            assert burst.line(r"done (\d+) ok").group(1) == str(count)
            assert await store.list("crowd") == []  # each one deregistered on its way out
        finally:
            await store.close()


async def test_kill9_is_skipped_at_once_and_gone_within_ttl(registry_url: str) -> None:
    ttl = 3.0
    async with Resolver(open_registry(registry_url), owns_store=True) as resolver, \
            register("users", [abstract("survivor")], registry=registry_url, ttl=ttl) as alive:
        with Worker(["hold", registry_url, "users"], env={"TTL": str(ttl)}) as victim:
            victim_id = victim.line(r"registered (\S+)").group(1)
            await resolver.wait_for(lambda: len(resolver.instances("users")) == 2, 10)
            victim.kill9()
            # the caller tries the victim, is refused, marks it failed: skipped at once
            answer = resolver.cached("users")
            assert answer is not None
            for candidate in answer.candidates:
                if candidate.instance.id == victim_id:
                    resolver.mark_failed(candidate, ConnectionRefusedError("refused"))
            answer = await resolver.resolve("users")
            assert {c.instance.id for c in answer.candidates} == {alive.instance.id}
            assert any(s.instance.id == victim_id and "is gone (pid check)" in s.reason
                       for s in answer.skipped)
            # and the record itself disappears for everyone within its TTL
            await resolver.wait_for(
                lambda: [i.id for i in resolver.instances("users")] == [alive.instance.id],
                ttl + 3)
            store = open_registry(registry_url)
            try:
                assert [i.id for i in await store.list("users")] == [alive.instance.id]
            finally:
                await store.close()


async def test_watch_sees_other_processes_come_and_go(registry_url: str) -> None:
    store = open_registry(registry_url)
    views = store.watch()
    try:
        first = await asyncio.wait_for(anext(views), 10)
        assert first.instances == () and not first.stale
        with Worker(["hold", registry_url, "orders"]) as worker:
            instance_id = worker.line(r"registered (\S+)").group(1)
            view = await asyncio.wait_for(anext(views), 10)
            assert view.instances is not None
            assert [i.id for i in view.instances] == [instance_id]
            assert worker.finish() == 0
        view = await asyncio.wait_for(anext(views), 10)
        assert view.instances == ()
    finally:
        await views.aclose()
        await store.close()


async def test_lost_record_is_registered_again(registry_url: str) -> None:
    """A record removed behind the owner's back (an operator's prune of a paused process,
    an etcd lease revoked) comes back at the next heartbeat."""
    store = open_registry(registry_url)
    other = open_registry(registry_url)
    try:
        instance = make_instance("users", [abstract("lost")], ttl=3)
        async with register("users", instance.urls, registry=store, ttl=3) as registration:
            assert registration.registrations == 1
            # the other store forgets nothing of its own; remove the record as a stranger
            await _remove_as_stranger(registry_url, registration.instance)
            assert await other.list("users") == []
            async with Resolver(other) as resolver:
                await resolver.wait_for(lambda: len(resolver.instances("users")) == 1, 10)
            # the registry may show the record before register() returned to its caller
            await registration.wait_for(lambda r: r.registrations == 2, 10)
    finally:
        await store.close()
        await other.close()


async def _remove_as_stranger(registry_url: str, instance: object) -> None:
    from trunkline.registry.model import Instance

    assert isinstance(instance, Instance)
    if registry_url.startswith("sqlite://"):
        import sqlite3

        db = sqlite3.connect(registry_url[len("sqlite://"):], isolation_level=None)
        db.execute("DELETE FROM instances WHERE service = ? AND id = ?", instance.key)
        db.execute("UPDATE generation SET value = value + 1")
        db.close()
    else:
        from trunkline.registry.etcd import EtcdStore

        store = open_registry(registry_url)
        assert isinstance(store, EtcdStore)
        await store._members.call(lambda c: c.delete(store._key(*instance.key)))
        await store.close()
