"""The caller's side: service name -> ranked candidates, from a cache the backend keeps fresh.

    async with Resolver(open_registry()) as resolver:
        resolution = await resolver.resolve("users")   # first call may read the backend
        ...
        resolution = resolver.cached("users")          # sync, no I/O: None if never read

The resolver follows the store's ``watch`` (SQLite: a poll of one integer; etcd: a watch
stream), so after the first read every resolve is served from memory: the ranked and
rotated answers are precomputed per (name, prefer, datagram) and rebuilt only when the view
changes or a failure mark runs out. ``mark_failed`` takes a refusing address (or, when the
process is gone, the whole instance) out of the answers at once, without waiting for the
record to expire. When the backend becomes unreachable the cached view keeps serving, with
``stale=True``; with nothing cached the resolver raises ``RegistryUnavailableError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType

from ..address import check_service_name
from ..errors import RegistryError, RegistryUnavailableError, ResolveError
from .hostid import HostIdentity, process_alive
from .interfaces import Interface, local_interfaces
from .model import Instance
from .ranking import Candidate, Resolution, Skipped, check_prefer, rank, rotations
from .store import RegistryView, Store

log = logging.getLogger("trunkline.registry")
_INF = float("inf")


class _Entry:
    """The precomputed answers for one (name, prefer, datagram), handed out in turn."""

    __slots__ = ("answers", "turn", "until")

    def __init__(self, answers: list[Resolution], until: float) -> None:
        self.answers = answers
        self.turn = -1
        self.until = until  # monotonic time a failure mark in it runs out


class Resolver:
    """Resolves service names for this process against ``store`` (see module docstring)."""

    def __init__(self, store: Store, *, owns_store: bool = False,
                 host: HostIdentity | None = None, networks: list[Interface] | None = None,
                 first_view_timeout: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock  # for failure marks; tests pass their own
        self.owns_store = owns_store
        self.first_view_timeout = first_view_timeout
        self.here = host or HostIdentity.current()
        self._networks = networks
        self._view: RegistryView | None = None
        self._by_name: dict[str, tuple[Instance, ...]] = {}
        self._entries: dict[tuple[str, str | None, bool], _Entry] = {}
        self._failed: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._dead: dict[tuple[str, str], tuple[int, str]] = {}  # key -> (pid, why)
        self._task: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self.version = 0  # counts the views seen: wait_for(lambda: r.version > seen)

    # ------------------------------------------------------------------ the fast path

    def cached(self, name: str, prefer: str | None = None, datagram: bool = False
               ) -> Resolution | None:
        """The answer from memory, no I/O: None when the registry was never read. Its
        ``candidates`` may be empty (no live instance this caller can reach)."""
        entry = self._entries.get((name, prefer, datagram))
        if entry is None or (entry.until != _INF and entry.until < self.clock()):
            entry = self._build(name, prefer, datagram)
            if entry is None:
                return None
        answers = entry.answers
        if len(answers) == 1:
            return answers[0]
        entry.turn += 1
        return answers[entry.turn % len(answers)]

    async def resolve(self, name: str, *, prefer: str | None = None, datagram: bool = False
                      ) -> Resolution:
        """Candidates for ``name`` best first. Reads the backend only when nothing is
        cached; raises ``ResolveError`` when no live instance is reachable from here and
        ``RegistryUnavailableError`` when the backend cannot be read and nothing is cached."""
        answer = self.cached(name, prefer, datagram)
        if answer is None:
            await self.start()
            answer = self.cached(name, prefer, datagram)
            if answer is None:  # pragma: no cover - start() raised already
                raise RegistryUnavailableError(f"{self.store.url}: nothing read yet")
        if not answer.candidates:
            raise ResolveError(_nothing_reachable(answer))
        return answer

    def mark_failed(self, candidate: Candidate, error: BaseException | str | None = None
                    ) -> None:
        """Leave ``candidate`` out of the answers for a while (its instance's TTL): it
        refused or timed out. When its process is gone (checked where the pid means
        something), leave the whole instance out."""
        instance = candidate.instance
        why = error if isinstance(error, str) else _describe(error)
        if self.here.same_pids(instance.host) and not process_alive(instance.pid,
                                                                    instance.pid_start):
            self._dead[instance.key] = (instance.pid,
                                        f"process {instance.pid} is gone (pid check)")
        else:
            until = self.clock() + max(instance.ttl, 1.0)
            self._failed[(*instance.key, candidate.url)] = (until, f"marked failed: {why}")
        for key in [k for k in self._entries if k[0] == instance.service]:
            del self._entries[key]

    # ------------------------------------------------------------------ the view

    @property
    def stale(self) -> bool:
        return self._view is not None and self._view.stale

    @property
    def view(self) -> RegistryView | None:
        return self._view

    @property
    def backend(self) -> str:
        return self.store.url

    def instances(self, name: str | None = None) -> list[Instance]:
        """The cached live instances (of ``name``, or all)."""
        if name is not None:
            return list(self._by_name.get(name, ()))
        return [i for group in self._by_name.values() for i in group]

    async def start(self) -> None:
        """Follow the store's changes (once) and wait for its first view."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="trunkline-resolver")
        if self._view is None or self._view.instances is None:
            try:
                await asyncio.wait_for(self._until(lambda: self._view is not None),
                                       self.first_view_timeout)
            except TimeoutError:
                raise RegistryUnavailableError(
                    f"{self.store.url}: no answer within {self.first_view_timeout:g} s") \
                    from None
        view = self._view
        assert view is not None
        if view.instances is None:  # the error names the backend and what to do
            if view.problem is not None:
                raise view.problem
            raise RegistryUnavailableError(view.error or f"{self.store.url}: unreachable")

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait (at most ``timeout`` s, else ``TimeoutError``) until ``predicate()`` holds
        after a view change: tests and ``services --watch`` wait on this, not on sleeps."""
        await self.start()
        await asyncio.wait_for(self._until(predicate), timeout)

    async def _until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    async def _follow(self) -> None:
        try:
            async for view in self.store.watch():
                self._apply(view)
        except asyncio.CancelledError:
            raise
        except RegistryError as exc:
            self._apply(RegistryView(self._view.instances if self._view else None,
                                     stale=True, error=str(exc), problem=exc))
        except Exception as exc:  # a bug in a backend must not leave waiters hanging
            log.exception("registry watch failed")
            self._apply(RegistryView(self._view.instances if self._view else None,
                                     stale=True, error=repr(exc)))

    def _apply(self, view: RegistryView) -> None:
        self.version += 1
        if view.instances is None and self._view is not None and self._view.instances:
            view = RegistryView(self._view.instances, view.stale, view.error, view.at,
                                view.problem)
        self._view = view
        by_name: dict[str, list[Instance]] = {}
        for instance in view.instances or ():
            by_name.setdefault(instance.service, []).append(instance)
        self._by_name = {name: tuple(group) for name, group in by_name.items()}
        self._entries.clear()
        now = self.clock()
        for mark, (until, _) in list(self._failed.items()):
            if until <= now:
                del self._failed[mark]
        present = {i.key: i.pid for i in view.instances or ()}
        for key, (pid, _) in list(self._dead.items()):
            if present.get(key) != pid:
                del self._dead[key]  # gone from the view, or registered again by a new process
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _build(self, name: str, prefer: str | None, datagram: bool) -> _Entry | None:
        view = self._view
        if view is None or view.instances is None:
            return None
        check_service_name(name)
        check_prefer(prefer)
        now = self.clock()
        until = _INF
        usable: list[Instance] = []
        gone: list[Skipped] = []
        failed: list[tuple[Instance, str, str]] = []
        for instance in self._by_name.get(name, ()):
            dead = self._dead.get(instance.key)
            if dead is not None and dead[0] == instance.pid:
                gone.extend(Skipped(instance, url, dead[1]) for url in instance.urls)
                continue
            urls = []
            for url in instance.urls:
                mark = self._failed.get((*instance.key, url))
                if mark is not None and mark[0] > now:
                    failed.append((instance, url, mark[1]))
                    until = min(until, mark[0])
                else:
                    urls.append(url)
            if urls:
                usable.append(instance if len(urls) == len(instance.urls)
                              else _with_urls(instance, urls))
        if self._networks is None and any(not self.here.same_network(i.host) for i in usable):
            self._networks = local_interfaces()
        groups, skipped = rank(usable, self.here, prefer=prefer, datagram=datagram,
                               networks=self._networks or ())
        skipped = gone + [Skipped(i, u, why) for i, u, why in failed] + skipped
        count = len(self._by_name.get(name, ()))
        answers = [Resolution(name, flat, tuple(skipped), count, self.store.url, view.stale,
                              prefer) for flat in rotations(groups)]
        entry = _Entry(answers, until)
        self._entries[(name, prefer, datagram)] = entry
        return entry

    # ------------------------------------------------------------------ lifetime

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.owns_store:
            await self.store.close()

    async def __aenter__(self) -> Resolver:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


def _with_urls(instance: Instance, urls: list[str]) -> Instance:
    return replace(instance, urls=tuple(urls))


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "connection failed"
    return str(error) or type(error).__name__


def _nothing_reachable(answer: Resolution) -> str:
    where = f"in {answer.backend}" + (" (stale: the registry is unreachable)"
                                       if answer.stale else "")
    if not answer.instances:
        return (f"service {answer.service!r}: no live instance {where}; `trunkline services` "
                "lists what is registered")
    reasons = "; ".join(sorted({f"{s.url}: {s.reason}" for s in answer.skipped}))
    return (f"service {answer.service!r}: {answer.instances} instance(s) {where}, none "
            f"reachable from here ({reasons})")
