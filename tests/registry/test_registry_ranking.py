"""The caller's ranking, from host identities (what the netns tests check for real), and the
resolver's cache: round-robin, prefer, failure marks, stale answers."""

from __future__ import annotations

import dataclasses
import ipaddress
import os

import pytest

from trunkline.errors import AddressError, ResolveError
from trunkline.registry import HostIdentity, Instance, Resolver, open_registry, rank, register
from trunkline.registry.ranking import rank_instance, rotations

HERE = HostIdentity("a", "boot-1", 10, 20, 30)
SAME_NET_OTHER_FS = dataclasses.replace(HERE, mnt_ns=21)
OTHER_HOST = HostIdentity("b", "boot-2", 10, 20, 30)  # same inode numbers, another boot
OTHER_NETNS = dataclasses.replace(HERE, hostname="b", net_ns=11, mnt_ns=22)
URLS = ("tcp://127.0.0.1:8000", "tcp://198.18.0.1:8000", "tls://198.18.0.1:8443",
        "fifo:///run/u.fifo", "unix:///run/u.sock", "unix:@u", "udp://127.0.0.1:9",
        "unixgram:@ug", "tcp://203.0.113.9:8000")


def instance(host: HostIdentity = HERE, urls: tuple[str, ...] = URLS, id: str = "i1",
             started: float = 1.0) -> Instance:
    return Instance("users", id, urls, "http", 4242, host, started)


def order(host: HostIdentity, caller: HostIdentity = HERE, **kwargs: object) -> list[str]:
    candidates, _ = rank_instance(instance(host), caller, **kwargs)  # type: ignore[arg-type]
    return [c.url for c in candidates]


def test_same_host_fastest_local_kind_first() -> None:
    candidates, skipped = rank_instance(instance(HERE), HERE)
    assert [(c.url, c.reason) for c in candidates] == [
        ("unix:@u", "same network namespace: abstract name reachable"),
        ("unix:///run/u.sock", "same mount namespace: Unix path reachable"),
        ("fifo:///run/u.fifo", "same mount namespace: FIFO pair reachable"),
        ("tcp://127.0.0.1:8000", "same network namespace: loopback TCP reachable"),
        ("tcp://198.18.0.1:8000", "same network namespace: TCP on an address of this host"),
        ("tcp://203.0.113.9:8000", "same network namespace: TCP on an address of this host"),
        ("tls://198.18.0.1:8443", "same network namespace: TLS on an address of this host"),
    ]
    assert {s.url: s.reason for s in skipped} == {
        "udp://127.0.0.1:9": "datagram socket: this call needs a stream",
        "unixgram:@ug": "datagram socket: this call needs a stream"}


def test_same_network_other_filesystem_skips_paths() -> None:
    candidates, skipped = rank_instance(instance(SAME_NET_OTHER_FS), HERE)
    assert candidates[0].url == "unix:@u"
    reasons = {s.url: s.reason for s in skipped}
    assert reasons["unix:///run/u.sock"] == "other mount namespace: Unix path skipped"
    assert reasons["fifo:///run/u.fifo"] == "other mount namespace: FIFO pair skipped"


@pytest.mark.parametrize("other", [OTHER_HOST, OTHER_NETNS])
def test_other_host_gets_tls_then_tcp_on_a_near_network(other: HostIdentity) -> None:
    near = [ipaddress.ip_interface("198.18.0.2/24")]
    candidates, skipped = rank_instance(instance(other), HERE, networks=near)
    assert [(c.url, c.reason) for c in candidates] == [
        ("tls://198.18.0.1:8443", "other host: TLS on 198.18.0.0/24, a network this caller "
                                  "is on"),
        ("tcp://198.18.0.1:8000", "other host: TCP on 198.18.0.0/24, a network this caller "
                                  "is on"),
        ("tcp://203.0.113.9:8000", "other host: TCP on a non-loopback address"),
    ]
    reasons = {s.url: s.reason for s in skipped}
    assert reasons["tcp://127.0.0.1:8000"] == "other host: loopback skipped"
    assert reasons["unix:@u"] == "other network namespace: abstract name skipped"
    assert reasons["unix:///run/u.sock"] == "other mount namespace: Unix path skipped"


def test_prefer_moves_a_reachable_kind_first() -> None:
    assert order(HERE, prefer="tcp")[:2] == ["tcp://127.0.0.1:8000", "tcp://198.18.0.1:8000"]
    candidates, _ = rank_instance(instance(HERE), HERE, prefer="fifo")
    assert candidates[0].reason == "preferred (fifo); same mount namespace: FIFO pair reachable"
    # a preferred kind the caller cannot reach stays out
    assert "unix:///run/u.sock" not in order(OTHER_NETNS, prefer="unix")


def test_datagram_ranking() -> None:
    assert order(HERE, datagram=True) == ["unixgram:@ug", "udp://127.0.0.1:9"]
    assert order(OTHER_NETNS, datagram=True) == []


def test_instances_with_equal_best_tiers_take_turns() -> None:
    a = instance(HERE, ("unix:@a", "tcp://127.0.0.1:1"), "a", 1.0)
    b = instance(HERE, ("unix:@b",), "b", 2.0)
    c = instance(OTHER_NETNS, ("tcp://198.18.0.1:1",), "c", 0.5)
    groups, _ = rank([c, b, a], HERE)
    answers = [[x.url for x in flat] for flat in rotations(groups)]
    assert answers == [["unix:@a", "tcp://127.0.0.1:1", "unix:@b", "tcp://198.18.0.1:1"],
                       ["unix:@b", "unix:@a", "tcp://127.0.0.1:1", "tcp://198.18.0.1:1"]]


def test_bad_prefer_is_a_usage_error() -> None:
    with pytest.raises(AddressError, match="kind 'smoke' is not one of abstract, unix"):
        from trunkline.registry.ranking import check_prefer

        check_prefer("smoke")


# ---------------------------------------------------------------- the resolver, for real


async def test_resolver_round_robin_and_prefer(sqlite_url: str) -> None:
    tag = os.urandom(3).hex()
    async with register("users", [f"unix:@tl-rr-a-{tag}", "tcp://127.0.0.1:7001"],
                        registry=sqlite_url) as a, \
            register("users", [f"unix:@tl-rr-b-{tag}", "tcp://127.0.0.1:7002"],
                     registry=sqlite_url) as b, \
            Resolver(open_registry(sqlite_url), owns_store=True) as resolver:
        await resolver.wait_for(lambda: len(resolver.instances("users")) == 2, 10)
        fronts = [(await resolver.resolve("users")).best.instance.id for _ in range(4)]
        assert sorted(fronts) == sorted([a.instance.id, b.instance.id] * 2)
        assert fronts[0] != fronts[1] and fronts[0] == fronts[2]
        answer = await resolver.resolve("users", prefer="tcp")
        assert answer.best.kind == "tcp" and answer.prefer == "tcp"
        assert answer.instances == 2 and answer.backend == sqlite_url and not answer.stale
        assert resolver.cached("users", prefer="tcp") is not None
        assert resolver.cached("nobody") is not None  # read, and empty
        with pytest.raises(ResolveError, match="no live instance.*trunkline services"):
            await resolver.resolve("nobody")


async def test_mark_failed_skips_an_address_until_its_mark_runs_out(sqlite_url: str) -> None:
    tag = os.urandom(3).hex()
    now = [1000.0]
    async with register("users", [f"unix:@tl-mf-{tag}", "tcp://127.0.0.1:7003"],
                        registry=sqlite_url, ttl=2), \
            Resolver(open_registry(sqlite_url), owns_store=True,
                     clock=lambda: now[0]) as resolver:
        first = (await resolver.resolve("users")).best
        resolver.mark_failed(first, ConnectionRefusedError(111, "Connection refused"))
        answer = await resolver.resolve("users")
        assert answer.best.url == "tcp://127.0.0.1:7003"  # the process lives: only that URL
        assert any(s.url == first.url and "marked failed" in s.reason for s in answer.skipped)
        now[0] += 1.9
        assert (await resolver.resolve("users")).best.url == "tcp://127.0.0.1:7003"
        now[0] += 0.2  # the mark lasts the instance's TTL (2 s)
        assert (await resolver.resolve("users")).best.url == first.url


async def test_unreachable_only_instances_give_a_clear_error(sqlite_url: str) -> None:
    other_host = dataclasses.replace(HostIdentity.current(), boot_id="another-machine")
    store = open_registry(sqlite_url)
    try:
        from trunkline.registry import make_instance

        remote = make_instance("users", ["unix:///run/u.sock", "tcp://127.0.0.1:1"],
                               host=other_host)
        await store.register(remote)
        async with Resolver(store) as resolver:
            with pytest.raises(ResolveError, match="1 instance.*none reachable from here.*"
                               "loopback skipped"):
                await resolver.resolve("users")
    finally:
        await store.close()
