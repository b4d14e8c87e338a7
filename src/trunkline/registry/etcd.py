"""The etcd v3 backend, for services on several machines (aetcd, an asyncio gRPC client).

Keys: ``<prefix>/services/<service>/<instance id>`` holding the JSON record, attached to one
lease per instance (TTL = the record's, in whole seconds) that the owner keeps alive every
TTL/3; a crashed owner's record disappears when its lease runs out.

Members: the store talks to one member at a time and moves to the next when a call fails
(refused, timed out, no leader), so one dead member of three costs one failed attempt.
When every member fails the call raises ``RegistryUnavailableError``; ``watch`` then yields
its last view marked stale and keeps trying, and a ``Registration`` keeps retrying too (when
the cluster comes back without the lease, it registers again).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import logging
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from ..address import format_hostport
from ..errors import DuplicateInstanceError, RegistryError, RegistryUnavailableError
from .hostid import HostIdentity
from .model import Instance
from .store import RegistryView, Store, is_dead

log = logging.getLogger("trunkline.registry")
T = TypeVar("T")


def _aetcd() -> Any:
    try:
        import aetcd
    except ImportError as exc:
        raise RegistryError("the etcd registry needs the aetcd package: pip install "
                            "'trunkline[etcd]'") from exc
    return aetcd


def _member_trouble(exc: BaseException) -> bool:
    """Whether another member may do better (unreachable, timed out, no leader), as
    opposed to an answer (a failed precondition, a lease that does not exist)."""
    aetcd = _aetcd()
    errors = aetcd.exceptions
    if isinstance(exc, errors.PreconditionFailedError | errors.InvalidArgumentError
                  | errors.DuplicateLeaseError | errors.UnauthenticatedError
                  | errors.RevisionCompactedError):
        return False
    if isinstance(exc, errors.ClientError):
        return "not found" not in str(exc)
    return isinstance(exc, TimeoutError | OSError)


class _Members:
    """One aetcd client at a time, on the member in turn; failover to the next on trouble."""

    def __init__(self, endpoints: list[tuple[str, int]], timeout: float) -> None:
        self.endpoints = endpoints
        self.timeout = timeout
        self._index = 0
        self._client: Any = None

    def current(self) -> Any:
        if self._client is None:
            host, port = self.endpoints[self._index]
            self._client = _aetcd().Client(host=host, port=port, timeout=self.timeout)
        return self._client

    @property
    def member(self) -> str:
        return format_hostport(*self.endpoints[self._index])

    async def drop(self, client: Any) -> None:
        """``client`` failed: the next call goes to the next member."""
        if client is self._client:
            self._client = None
            self._index = (self._index + 1) % len(self.endpoints)
        with contextlib.suppress(Exception):
            await client.close()

    async def call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        problems = []
        for _ in range(len(self.endpoints)):
            client, member = self.current(), self.member
            try:
                return await op(client)
            except Exception as exc:
                if not _member_trouble(exc):
                    raise
                problems.append(f"{member}: {_summary(exc)}")
                await self.drop(client)
        raise RegistryUnavailableError("etcd unreachable (" + "; ".join(problems) + ")")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


def _summary(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class EtcdStore(Store):
    """Registry records in an etcd v3 cluster reached at ``endpoints``."""

    def __init__(self, endpoints: list[tuple[str, int]], *, prefix: str = "/trunkline",
                 timeout: float = 2.0, retry_max: float = 2.0) -> None:
        self.endpoints = list(endpoints)
        self.prefix = prefix.rstrip("/")
        members = ",".join(format_hostport(h, p) for h, p in self.endpoints)
        self.url = f"etcd://{members}" + ("" if self.prefix == "/trunkline" else self.prefix)
        self.retry_max = retry_max
        self._members = _Members(self.endpoints, timeout)
        self._owners: dict[tuple[str, str], str] = {}
        self._leases: dict[tuple[str, str], int] = {}
        self._here = HostIdentity.current()

    def _key(self, service: str | None = None, instance_id: str | None = None) -> bytes:
        key = f"{self.prefix}/services/"
        if service is not None:
            key += f"{service}/"
            if instance_id is not None:
                key += instance_id
        return key.encode()

    def _parse(self, value: bytes) -> tuple[Instance, str] | None:
        try:
            return Instance.from_json(value)
        except ValueError as exc:
            log.warning("%s: skipping unreadable record: %s", self.url, exc)
            return None

    # ------------------------------------------------------------------ registrations

    async def register(self, instance: Instance) -> None:
        key = self._key(*instance.key)
        owner = self._owners.get(instance.key) or os.urandom(8).hex()
        value = instance.to_json(owner=owner).encode()
        ttl = max(2, math.ceil(instance.ttl))

        async def op(client: Any) -> int:
            lease = await client.lease(ttl)
            try:
                await self._claim(client, key, value, lease.id, owner, instance)
            except BaseException:
                with contextlib.suppress(Exception):
                    await client.revoke_lease(lease.id)
                raise
            return int(lease.id)

        lease_id = await self._members.call(op)
        old = self._leases.get(instance.key)
        self._owners[instance.key] = owner
        self._leases[instance.key] = lease_id
        if old is not None and old != lease_id:  # a lease that outlived an outage
            with contextlib.suppress(Exception):
                await self._members.call(lambda c: c.revoke_lease(old))

    async def _claim(self, client: Any, key: bytes, value: bytes, lease: int, owner: str,
                     instance: Instance) -> None:
        """Put the record if the key is free, ours, or held by a dead instance."""
        txn = client.transactions
        for _ in range(5):  # each round loses only to a concurrent change of the key
            ok, responses = await client.transaction(
                compare=[txn.version(key) == 0], success=[txn.put(key, value, lease=lease)],
                failure=[txn.get(key)])
            if ok:
                return
            if not responses or not responses[0]:
                continue  # deleted in between
            held_value, held_kv = responses[0][0]
            parsed = self._parse(held_value)
            if parsed is not None and parsed[1] != owner and not is_dead(
                    parsed[0], self._here, 0.0):
                raise DuplicateInstanceError(_duplicate(instance, parsed[0]))
            ok, _ = await client.transaction(
                compare=[txn.mod(key) == held_kv.mod_revision],
                success=[txn.put(key, value, lease=lease)], failure=[])
            if ok:
                return
        raise RegistryUnavailableError(f"{self.url}: key {key.decode()} keeps changing; "
                                       "another registration races for the same instance id")

    async def heartbeat(self, instance: Instance) -> bool:
        lease = self._leases.get(instance.key)
        if lease is None:
            return False
        key = self._key(*instance.key)

        async def op(client: Any) -> bool:
            try:
                reply = await client.refresh_lease(lease)
            except Exception as exc:
                if _member_trouble(exc):
                    raise
                reply = None  # "requested lease not found": it ran out while we were away
            if reply is None or reply.TTL <= 0:
                return False
            # the key may have been deleted on its own (etcdctl del, a prune): look
            held = await client.get(key)
            return held is not None and int(held.lease) == lease

        if await self._members.call(op):
            return True
        log.info("%s: record %s/%s is gone", self.url, *instance.key)
        self._leases.pop(instance.key, None)
        return False

    async def deregister(self, instance: Instance) -> bool:
        self._owners.pop(instance.key, None)
        lease = self._leases.pop(instance.key, None)
        if lease is None:
            return False

        async def op(client: Any) -> bool:
            try:
                await client.revoke_lease(lease)  # deletes the key attached to it
            except Exception as exc:
                if _member_trouble(exc):
                    raise
                return False  # the lease had run out already
            return True

        return await self._members.call(op)

    # ------------------------------------------------------------------ reading

    async def _read(self, service: str | None = None) -> tuple[dict[bytes, Instance], int]:
        result = await self._members.call(lambda c: c.get_prefix(self._key(service)))
        found: dict[bytes, Instance] = {}
        for kv in result:
            parsed = self._parse(kv.value)
            if parsed is not None:
                found[kv.key] = parsed[0]
        return found, int(result.header.revision)

    def _live(self, found: dict[bytes, Instance]) -> tuple[Instance, ...]:
        live = [i for i in found.values() if not is_dead(i, self._here, 0.0)]
        live.sort(key=lambda i: (i.started, i.service, i.id))
        return tuple(live)

    async def list(self, service: str | None = None) -> builtins.list[Instance]:
        found, _ = await self._read(service)
        return list(self._live(found))

    async def prune(self) -> builtins.list[Instance]:
        found, _ = await self._read()
        dead = [(key, i) for key, i in found.items() if is_dead(i, self._here, 0.0)]
        for key, _instance in dead:
            await self._members.call(functools.partial(_delete, key=key))
        return [i for _, i in dead]

    async def watch(self) -> AsyncIterator[RegistryView]:
        found: dict[bytes, Instance] | None = None
        stale = False
        delay = 0.1
        while True:
            client = None
            try:
                found, revision = await self._read()
                client = self._members.current()
                watch = await client.watch_prefix(self._key(), start_revision=revision + 1)
            except Exception as exc:
                if isinstance(exc, RegistryUnavailableError) or _member_trouble(exc):
                    if client is not None:  # read there, but could not watch: next member
                        await self._members.drop(client)
                    if not stale:
                        log.warning("%s: %s; serving the last view", self.url, _summary(exc))
                    stale = True
                    last = self._live(found) if found is not None else None
                    problem = exc if isinstance(exc, RegistryError) else \
                        RegistryUnavailableError(f"{self.url}: {_summary(exc)}")
                    yield RegistryView(last, stale=True, error=str(exc), problem=problem)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max)
                    continue
                raise
            stale, delay = False, 0.1
            yield RegistryView(self._live(found))
            try:
                async for event in watch:
                    key, kind = event.kv.key, str(event.kind.value if hasattr(
                        event.kind, "value") else event.kind)
                    if kind.endswith("DELETE"):
                        found.pop(key, None)
                    else:
                        parsed = self._parse(event.kv.value)
                        if parsed is None:
                            continue
                        found[key] = parsed[0]
                    yield RegistryView(self._live(found))
            except Exception as exc:
                if not _member_trouble(exc):
                    log.warning("%s: watch ended (%s); reading again", self.url, _summary(exc))
                await self._members.drop(client)  # resync, from the next member
            finally:
                with contextlib.suppress(Exception):
                    await watch.cancel()

    async def close(self) -> None:
        await self._members.close()


async def _delete(client: Any, *, key: bytes) -> Any:
    return await client.delete(key)


def _duplicate(instance: Instance, held: Instance) -> str:
    return (f"instance id {instance.id!r} of service {instance.service!r} is already "
            f"registered by pid {held.pid} on {held.host.hostname} (its lease is alive); "
            "choose another instance id, or stop that instance first")
