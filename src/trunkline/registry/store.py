"""The one small interface every registry backend implements (SQLite file, etcd).

A store keeps instance records. Each ``register`` call hands the store one registration it
owns until ``deregister``: the store refreshes it on ``heartbeat`` (SQLite: a new expiry;
etcd: a lease keep-alive) and tells the caller when the record was lost (expired while the
backend was away) so it can register again. ``watch`` yields the whole live view each time
it changes, which is what a resolver's cache needs.
"""

from __future__ import annotations

import abc
import builtins
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType

from ..errors import RegistryError
from .hostid import HostIdentity, process_alive
from .model import Instance


@dataclass(frozen=True)
class RegistryView:
    """Every live instance as the backend last told it.

    ``instances`` is None when the backend has never answered this reader; ``stale`` when
    it stopped answering (``error`` says how) and this is the last view it gave."""

    instances: tuple[Instance, ...] | None
    stale: bool = False
    error: str | None = None
    at: float = field(default_factory=time.time)
    problem: RegistryError | None = field(default=None, compare=False)  # what ``error`` says


class Store(abc.ABC):
    """Backend interface. ``url`` is the registry URL, for messages and traces."""

    url: str

    @abc.abstractmethod
    async def register(self, instance: Instance) -> None:
        """Store ``instance`` (again, if it was lost). ``DuplicateInstanceError`` when a live
        instance of another owner holds the same service and id."""

    @abc.abstractmethod
    async def heartbeat(self, instance: Instance) -> bool:
        """Keep a registration of this store alive; False when the record is gone (the
        caller registers it again)."""

    @abc.abstractmethod
    async def deregister(self, instance: Instance) -> bool:
        """Remove a registration of this store; False when it was already gone."""

    @abc.abstractmethod
    async def list(self, service: str | None = None) -> builtins.list[Instance]:
        """Live instances (of ``service``, or all), oldest first."""

    @abc.abstractmethod
    def watch(self) -> AsyncIterator[RegistryView]:
        """The live view now, then again after every change, forever. While the backend is
        unreachable it yields the last view marked stale, and keeps trying."""

    @abc.abstractmethod
    async def prune(self) -> builtins.list[Instance]:
        """Remove records of dead instances (expired, or whose process is gone on this
        host) and return them."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; registrations still open are not deregistered."""

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


def is_dead(instance: Instance, here: HostIdentity, now: float) -> bool:
    """Dead by what this process can see: expired, or its process gone (checked only when
    the record comes from this pid namespace, where its pid means something)."""
    if instance.expires and instance.expires < now:
        return True
    return here.same_pids(instance.host) and not process_alive(instance.pid, instance.pid_start)
