"""``trunkline.register``: keep one instance registered while a program runs.

    async with trunkline.register("users", ["unix:///run/users.sock", "tcp://0.0.0.0:8000"],
                                  protocol="http", meta={"version": "1.2"}) as registration:
        await serve_until_stopped()

Entering registers (a bad name, URL or record, and a registry that cannot be reached, raise
here); then a background task refreshes the record every TTL/3. When the registry stops
answering, the program keeps running and the task keeps trying every second or so; when
the record was lost meanwhile (etcd lease expired, SQLite row expired), it registers again.
Leaving deregisters (bounded: a registry that does not answer within a second is left to
expire the record within its TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType

from ..address import Address
from ..errors import DuplicateInstanceError, RegistryError, RegistryUnavailableError
from .model import DEFAULT_TTL, Instance, make_instance
from .store import Store
from .url import open_registry

log = logging.getLogger("trunkline.registry")


class Registration:
    """One registered instance and the task that keeps it alive (see module docstring)."""

    def __init__(self, instance: Instance, store: Store, *, owns_store: bool = False,
                 retry_interval: float = 1.0, deregister_timeout: float = 1.0) -> None:
        self.instance = instance
        self.store = store
        self.owns_store = owns_store
        self.retry_interval = retry_interval
        self.deregister_timeout = deregister_timeout
        self._task: asyncio.Task[None] | None = None
        self._registered = asyncio.Event()
        self.registrations = 0  # how often the record was written (1 + re-registrations)
        self.heartbeats = 0  # keep-alive rounds that reached the registry
        self.last_error: str | None = None
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def registered(self) -> bool:
        """Whether the record is known to be in the registry now (False while retrying)."""
        return self._registered.is_set()

    async def wait_registered(self) -> None:
        await self._registered.wait()

    async def wait_for(self, predicate: Callable[[Registration], bool], timeout: float) -> None:
        """Wait (at most ``timeout`` s, else ``TimeoutError``) until ``predicate(self)``
        holds after a keep-alive round."""
        async def until() -> None:
            while not predicate(self):
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

        await asyncio.wait_for(until(), timeout)

    def _round_done(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def start(self, *, required: bool = True) -> None:
        """Register, then keep the record alive. With ``required=False`` a registry that
        cannot be reached now is no error: the keep-alive task registers when it answers
        (``serve --name`` keeps serving meanwhile)."""
        try:
            await self.store.register(self.instance)
        except RegistryUnavailableError as exc:
            if required:
                if self.owns_store:
                    await self.store.close()
                raise
            self.last_error = str(exc)
        except BaseException:
            if self.owns_store:
                await self.store.close()
            raise
        else:
            self.registrations += 1
            self._registered.set()
        self._task = asyncio.create_task(self._keep_alive(),
                                         name=f"trunkline-register-{self.instance.id}")

    async def _keep_alive(self) -> None:
        interval = max(self.instance.ttl / 3, 0.2)
        while True:
            await asyncio.sleep(interval if self.registered else self.retry_interval)
            try:
                if await self.store.heartbeat(self.instance):
                    self.heartbeats += 1
                    alive = True
                else:
                    log.info("%s: %s/%s was lost from the registry; registering again",
                             self.store.url, *self.instance.key)
                    await self.store.register(self.instance)
                    self.registrations += 1
                    alive = True
            except DuplicateInstanceError as exc:
                log.error("%s: %s; this instance stays unregistered", self.store.url, exc)
                self.last_error = str(exc)
                self._registered.clear()
                self._round_done()
                return
            except RegistryError as exc:
                if self.registered:
                    log.warning("%s: %s; still serving, retrying every %g s", self.store.url,
                                exc, self.retry_interval)
                self.last_error = str(exc)
                alive = False
            except Exception as exc:  # a backend's surprise must not end the keep-alive
                log.exception("%s: keeping %s/%s registered failed", self.store.url,
                              *self.instance.key)
                self.last_error = repr(exc)
                alive = False
            if alive:
                if not self.registered and self.last_error:
                    log.info("%s: %s/%s registered again", self.store.url, *self.instance.key)
                self._registered.set()
            else:
                self._registered.clear()
            self._round_done()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await asyncio.wait_for(self.store.deregister(self.instance),
                                   self.deregister_timeout)
        except (RegistryError, TimeoutError) as exc:
            log.warning("%s: could not deregister %s/%s (%s); the record expires within "
                        "%g s", self.store.url, *self.instance.key, exc or "timed out",
                        self.instance.ttl)
        finally:
            self._registered.clear()
            if self.owns_store:
                await self.store.close()

    async def __aenter__(self) -> Registration:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


def register(name: str, urls: Iterable[str | Address], *, protocol: str = "raw",
             meta: Mapping[str, str] | None = None, ttl: float = DEFAULT_TTL,
             registry: str | Store | None = None, instance_id: str | None = None
             ) -> Registration:
    """An async context manager that keeps instance ``instance_id`` (default:
    ``hostname-pid-random``) of service ``name`` registered with ``urls`` (the addresses
    this program has bound; wildcards are expanded to the interface addresses) in
    ``registry`` (a URL, a store, or by default ``$TRUNKLINE_REGISTRY`` / the user's SQLite
    file). The record is checked now: a bad name, URL, protocol, TTL or metadata raises."""
    instance = make_instance(name, urls, protocol=protocol, meta=meta, ttl=ttl,
                             instance_id=instance_id)
    if isinstance(registry, Store):
        return Registration(instance, registry)
    return Registration(instance, open_registry(registry), owns_store=True)
