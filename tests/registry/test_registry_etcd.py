"""The etcd backend against real members: one of three stopped, all of them stopped and
started again (with their data, and wiped), and what readers see meanwhile."""

from __future__ import annotations

import asyncio

import pytest

from tests.registry.etcd_cluster import EtcdCluster
from tests.registry.workers import Worker
from trunkline.errors import RegistryUnavailableError
from trunkline.registry import Resolver, open_registry, register
from trunkline.registry.etcd import EtcdStore


async def test_one_member_of_three_stopped_the_registry_keeps_working(etcd3: EtcdCluster
                                                                     ) -> None:
    url = etcd3.url()
    async with register("users", ["unix:@tl-three-a"], registry=url, ttl=2) as first, \
            Resolver(open_registry(url), owns_store=True) as resolver:
        await resolver.wait_for(lambda: len(resolver.instances("users")) == 1, 10)
        store = resolver.store
        assert isinstance(store, EtcdStore)
        # stop the member both clients talk to first (members are tried in URL order)
        etcd3.stop(0)
        async with register("users", ["unix:@tl-three-b"], registry=url, ttl=2) as second:
            await resolver.wait_for(lambda: len(resolver.instances("users")) == 2, 15)
            assert not resolver.stale
            # the first registration's keep-alive moves to another member too: it keeps
            # beating, without having to register again
            beats = first.heartbeats
            await first.wait_for(lambda r: r.heartbeats >= beats + 2, 10)
            assert first.registrations == 1 and first.registered and second.registered
            listed = await store.list("users")
            assert {i.id for i in listed} == {first.instance.id, second.instance.id}
            answer = await resolver.resolve("users")
            assert {c.instance.id for c in answer.candidates} == {first.instance.id,
                                                                   second.instance.id}
            assert not answer.stale


@pytest.mark.timeout(90)
async def test_all_members_stopped_readers_serve_stale_then_fresh(etcd_own: EtcdCluster
                                                                  ) -> None:
    url = etcd_own.url()
    async with register("users", ["unix:@tl-outage"], registry=url, ttl=2) as registration, \
            Resolver(open_registry(url, retry_max=0.5), owns_store=True) as resolver:
        await resolver.wait_for(lambda: len(resolver.instances("users")) == 1, 10)
        etcd_own.stop()
        await resolver.wait_for(lambda: resolver.stale, 15)
        # the cached view keeps serving, marked stale
        answer = await resolver.resolve("users")
        assert answer.stale and answer.best.instance.id == registration.instance.id
        # a reader with nothing cached gets a clear error
        with pytest.raises(RegistryUnavailableError, match="etcd unreachable"):
            async with Resolver(open_registry(url), owns_store=True,
                                first_view_timeout=10) as fresh:
                await fresh.resolve("users")
        await registration.wait_for(lambda r: not r.registered, 10)
        assert registration.last_error and "etcd unreachable" in registration.last_error
        etcd_own.start()  # same data: the lease survived, its TTL was reset by the new leader
        await resolver.wait_for(lambda: not resolver.stale, 20)
        await registration.wait_for(lambda r: r.registered, 20)
        assert registration.registrations == 1  # kept alive, not registered anew
        answer = await resolver.resolve("users")
        assert not answer.stale and answer.best.instance.id == registration.instance.id


@pytest.mark.timeout(90)
async def test_after_a_wiped_cluster_comes_back_the_instance_registers_again(
        etcd_own: EtcdCluster) -> None:
    url = etcd_own.url()
    with Worker(["hold", url, "users"], env={"TTL": "2"}) as service:
        instance_id = service.line(r"registered (\S+)").group(1)
        async with Resolver(open_registry(url, retry_max=0.5), owns_store=True) as resolver:
            await resolver.wait_for(lambda: len(resolver.instances("users")) == 1, 10)
            etcd_own.stop()
            etcd_own.wipe()
            await resolver.wait_for(lambda: resolver.stale, 15)
            assert [i.id for i in resolver.instances("users")] == [instance_id]
            etcd_own.start()  # an empty cluster on the same ports: no lease, no record
            await resolver.wait_for(
                lambda: not resolver.stale and [i.id for i in resolver.instances("users")]
                == [instance_id], 20)
        assert service.finish() == 0
    assert any("registering again" in line for line in service.err), service.err


async def test_bad_etcd_urls_are_usage_errors() -> None:
    from trunkline.errors import AddressError

    for url, part in [("etcd://", "members are missing"), ("etcd://:2379", "host ''"),
                      ("etcd://h:0", "port '0'"),
                      ("etcd://a:1,,b:2", "stray ','"), ("etcd://::1:2379", "in brackets"),
                      ("etcd://h:1/bad prefix", "key prefix"), ("etcd://h:x", "port 'x'")]:
        with pytest.raises(AddressError, match=part):
            open_registry(url)


async def test_unreachable_members_are_named(etcd_own: EtcdCluster) -> None:
    port = etcd_own.members[0].client_port
    etcd_own.stop()
    store = open_registry(f"etcd://127.0.0.1:{port},127.0.0.2:{port}", timeout=1)
    try:
        with pytest.raises(RegistryUnavailableError) as caught:
            await asyncio.wait_for(store.list(), 20)
        assert f"127.0.0.1:{port}" in str(caught.value)
        assert f"127.0.0.2:{port}" in str(caught.value)
    finally:
        await store.close()
