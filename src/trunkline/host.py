"""``ServiceHost``: the one service host every server composes.

    host = ServiceHost([stream_endpoint(address, factory, options)], shutdown_timeout=10)
    await host.start()              # bind every address, then enter the hooks
    print(host.urls)                # as bound: port 0 resolved
    await host.serve_forever()      # until request_shutdown()/close() or a signal; then stop

``AppServer``, ``EchoServer``, ``trunkline.serve``'s ``Server`` and ``Relay`` are each a
``ServiceHost`` plus their protocol factory; ``HostedServer`` is the surface they share.

Rules:
- Binding: endpoints are bound in order. When one fails, the ones already bound are
  closed, in order, and released (their ports and socket files free again) before the
  error is raised. ``bind()`` is separate from serving: a host can also be given
  ``listeners=`` bound elsewhere (an inherited ``fd://`` socket in a worker process).
- Connections: every live connection is in ``connections`` (a ``ConnectionRegistry``) as
  an object with ``shutdown()`` and ``abort()`` (the ``Connection`` protocol). Work that
  may outlive its connection (an ASGI call after its response, a stream handler) is
  tracked there as a task.
- Stopping (``aclose``, or ``close`` then ``wait_closed``): the hooks are exited, then
  every listener closes (socket files removed), every connection is asked to
  ``shutdown()`` (finish what is in flight, then close), and the host waits until no
  connection and no task is left or ``grace`` (default ``shutdown_timeout``) is over.
  What is left is aborted (tasks cancelled) and given ``SETTLE_TIMEOUT`` to be gone.
- Hooks: ``hooks`` is an ordered list of ``hook(host)`` async context managers, entered in
  order once every address is bound (the urls are final) and exited in reverse order when
  stopping begins, before the listeners close and the drain starts. That is where a name
  is registered and deregistered (``--name``). (Worker processes, ``--workers``, are not a
  hook: they fork before any host exists, ``trunkline.workers``.) A hook that fails on
  entry exits the ones already entered and closes the listeners; a hook that fails on exit
  is logged and the stop goes on.
- Signals (``install_signal_handlers``): the first SIGTERM/SIGINT asks for a graceful stop
  (``serve_forever`` then stops), a second aborts every connection at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from .address import Address, format_address
from .transport import Listener, ListenOptions, listen
from .transport.base import ProtocolFactory

log = logging.getLogger("trunkline.host")

#: How long a graceful stop lets connections in flight finish, unless told otherwise.
DEFAULT_SHUTDOWN_TIMEOUT = 10.0
#: After the aborts: how long connections get to report themselves gone.
SETTLE_TIMEOUT = 1.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Connection(Protocol):
    """What the host asks of each connection it tracks."""

    def shutdown(self) -> None:
        """Finish what is in flight, then close (no new requests are taken)."""

    def abort(self) -> None:
        """Close now; cancel the work this connection runs."""


class ConnectionRegistry:
    """The live connections and in-flight tasks of one host. A connection adds itself when
    it is made and calls ``forget`` when it is gone; ``discard`` drops one that lives on
    under another object (a protocol switch) without waking a drain. ``track`` counts a
    task until it is done (a done callback drops it); a hot path may add to ``tasks``
    itself and discard its own task as it ends (the HTTP server does: a done callback
    costs a loop pass per request). A done task left in ``tasks`` counts as gone."""

    __slots__ = ("draining", "live", "tasks", "_waiter")

    def __init__(self) -> None:
        self.live: set[Connection] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.draining = False  # set when the host stops accepting
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self.live)

    def __iter__(self) -> Iterator[Connection]:
        return iter(self.live)

    def __contains__(self, conn: object) -> bool:
        return conn in self.live

    def add(self, conn: Connection) -> None:
        self.live.add(conn)

    def discard(self, conn: Connection) -> None:
        self.live.discard(conn)

    def forget(self, conn: Connection) -> None:
        """``conn`` is gone: drop it, and wake a drain waiting for the last one."""
        self.live.discard(conn)
        waiter = self._waiter
        if waiter is not None and not self.live and not waiter.done():
            waiter.set_result(None)

    def track(self, task: asyncio.Task[Any]) -> None:
        """Count ``task`` in the drain until it is done."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def abort_all(self) -> None:
        """Abort every connection and cancel every task, now."""
        self.draining = True
        for conn in list(self.live):
            conn.abort()
        for task in list(self.tasks):
            task.cancel()

    async def wait_empty(self, deadline: float) -> bool:
        """Wait until no connection is live and no task runs, or until ``deadline`` (loop
        time). True when empty. Connections first: while they live they may start tasks."""
        loop = asyncio.get_running_loop()
        while self.live and loop.time() < deadline:
            self._waiter = waiter = loop.create_future()
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter  # re-checked: a connection may hand over to another
            except TimeoutError:
                break
            finally:
                self._waiter = None
        pending = [task for task in self.tasks if not task.done()]
        if pending and not self.live:
            await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        return not self.live and all(task.done() for task in self.tasks)


@dataclass(frozen=True)
class Endpoint:
    """One address a host binds, and how: ``bind()`` returns its ``Listener``."""

    address: Address
    bind: Callable[[], Awaitable[Listener]]


def stream_endpoint(address: Address, factory: ProtocolFactory,
                    options: ListenOptions = ListenOptions()) -> Endpoint:
    """A stream address whose accepted connections get a protocol from ``factory``.
    (Datagram addresses: ``trunkline.aio.datagram_server.datagram_endpoint``.)"""
    return Endpoint(address, lambda: listen(address, factory, options))


#: A hook: given the host, an async context manager entered after binding and exited when
#: stopping begins.
Hook = Callable[["ServiceHost"], AbstractAsyncContextManager[object]]


class ServiceHost:
    """Listeners, the connections they accepted, and the way to stop them."""

    def __init__(self, endpoints: Sequence[Endpoint] = (), *,
                 listeners: Sequence[Listener] = (),
                 connections: ConnectionRegistry | None = None,
                 shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
                 hooks: Sequence[Hook] = ()) -> None:
        self.endpoints = list(endpoints)
        self.listeners: list[Listener] = list(listeners)
        self.connections = connections if connections is not None else ConnectionRegistry()
        self.shutdown_timeout = shutdown_timeout
        self.hooks: list[Hook] = list(hooks)
        self._bound = False
        self._started = False
        self._entered: AsyncExitStack | None = None
        self._stop = asyncio.Event()
        self._closed = False
        self._finished: asyncio.Future[None] | None = None
        self._stop_signal: signal.Signals | None = None  # what asked for the stop, if any

    @property
    def addresses(self) -> list[Address]:
        """The bound addresses, in order (port 0 replaced by the real port)."""
        return [listener.address for listener in self.listeners]

    @property
    def urls(self) -> list[str]:
        return [format_address(a) for a in self.addresses]

    # ---------------------------------------------------------------- starting

    async def bind(self) -> None:
        """Bind every endpoint, in order; on a failure release the ones bound and raise."""
        if self._bound:
            return
        bound: list[Listener] = []
        try:
            for endpoint in self.endpoints:
                bound.append(await endpoint.bind())
        except BaseException:
            await _release(bound)
            raise
        self._bound = True
        self.listeners.extend(bound)

    async def start(self) -> Self:
        """Bind (unless done), then enter the hooks in order. Idempotent."""
        if self._started:
            return self
        self._started = True
        await self.bind()
        stack = AsyncExitStack()
        try:
            for hook in self.hooks:
                await stack.enter_async_context(hook(self))
        except BaseException:
            await stack.aclose()
            self._closed = True
            await _release(self.listeners)
            raise
        self._entered = stack
        return self

    # ---------------------------------------------------------------- running

    async def stop_requested(self) -> None:
        """Return once a stop was asked for (``request_shutdown``, ``close``, a signal)."""
        await self._stop.wait()

    async def serve_forever(self, grace: float | None = None) -> None:
        """Start (unless started), serve until a stop is asked for, then stop gracefully."""
        await self.start()
        await self.stop_requested()
        await self.wait_closed(grace)

    def request_shutdown(self) -> None:
        """Ask ``serve_forever`` to stop (it exits the hooks first, then closes)."""
        self._stop.set()

    def install_signal_handlers(self, signals: Sequence[signal.Signals] = STOP_SIGNALS
                                ) -> Callable[[], None]:
        """The first of ``signals`` asks for a graceful stop; a second one aborts every
        connection at once. Returns a function that removes the handlers."""
        loop = asyncio.get_running_loop()
        count = 0

        def on_signal(sig: signal.Signals) -> None:
            nonlocal count
            count += 1
            if count == 1:
                log.info("stopping (%s): no new connections", sig.name)
                self._stop_signal = sig
                self.request_shutdown()
            else:
                log.warning("aborting (%s): cutting %d connections and %d tasks", sig.name,
                            len(self.connections), len(self.connections.tasks))
                self.abort()

        for sig in signals:
            loop.add_signal_handler(sig, on_signal, sig)

        def remove() -> None:
            for sig in signals:
                loop.remove_signal_handler(sig)

        return remove

    # ---------------------------------------------------------------- stopping

    def close(self) -> None:
        """Stop accepting and ask every connection to finish (returns at once). Hooks
        still entered are exited by ``wait_closed``."""
        self._stop.set()
        if self._closed:
            return
        self._closed = True
        self.connections.draining = True
        for listener in self.listeners:
            listener.close()
        for conn in list(self.connections):
            conn.shutdown()

    def abort(self) -> None:
        """Stop accepting and abort every connection and task now."""
        self.close()
        self.connections.abort_all()

    async def wait_closed(self, grace: float | None = None) -> None:
        """Stop: exit the hooks, ``close``, wait for connections and tasks up to ``grace``
        (default ``shutdown_timeout``), abort the rest. Every caller returns once the host
        is stopped; the first caller's ``grace`` counts."""
        if self._finished is not None:
            await asyncio.shield(self._finished)
            return
        self._finished = finished = asyncio.get_running_loop().create_future()
        try:
            await self._exit_hooks()
            self.close()
            await self._drain(self.shutdown_timeout if grace is None else grace)
        except BaseException:
            self.abort()  # cancelled mid-way: leave nothing running
            raise
        finally:
            finished.set_result(None)

    async def aclose(self, grace: float | None = None) -> None:
        await self.wait_closed(grace)

    async def _exit_hooks(self) -> None:
        stack, self._entered = self._entered, None
        if stack is None:
            return
        try:
            await stack.aclose()
        except Exception:
            log.exception("a host hook failed while stopping; the stop goes on")

    async def _drain(self, grace: float) -> None:
        loop = asyncio.get_running_loop()
        registry = self.connections
        if registry.live or registry.tasks:
            log.info("waiting for %s (up to %g s)%s", _in_flight(registry), grace,
                     _force_hint(self._stop_signal))
        if not await registry.wait_empty(loop.time() + grace):
            registry.abort_all()
            await registry.wait_empty(loop.time() + SETTLE_TIMEOUT)
        await _release(self.listeners)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


def _in_flight(registry: ConnectionRegistry) -> str:
    """``2 connections``, ``1 connection and 3 tasks``: what a drain waits for."""
    def count(n: int, what: str) -> str:
        return f"{n} {what}{'' if n == 1 else 's'}"

    tasks = sum(1 for task in registry.tasks if not task.done())
    parts = [count(len(registry.live), "connection")] if registry.live or not tasks else []
    if tasks:
        parts.append(count(tasks, "task"))
    return " and ".join(parts)


def _force_hint(sig: signal.Signals | None) -> str:
    """How to stop waiting, when a signal started the stop (the handler is still there)."""
    if sig is None:
        return ""
    if sig == signal.SIGINT:
        return ", Ctrl-C again to force"
    return f", send {sig.name} again to force"


async def _release(listeners: Sequence[Listener]) -> None:
    """Close ``listeners`` in order and wait (at most ``SETTLE_TIMEOUT``) until they are."""
    for listener in listeners:
        listener.close()
    if listeners:
        waits = [asyncio.ensure_future(listener.wait_closed()) for listener in listeners]
        done, pending = await asyncio.wait(waits, timeout=SETTLE_TIMEOUT)
        for wait in pending:
            wait.cancel()
        for wait in done:
            if not wait.cancelled() and wait.exception() is not None:
                log.debug("closing a listener: %r", wait.exception())


class HostedServer:
    """The surface every server built on a ``ServiceHost`` shares, forwarded to ``host``.
    A server overrides ``start`` or ``wait_closed`` to add its own steps around the host's
    (the ASGI lifespan)."""

    host: ServiceHost

    @property
    def listeners(self) -> list[Listener]:
        return self.host.listeners

    @property
    def addresses(self) -> list[Address]:
        """The bound addresses, in the order given (port 0 replaced by the real port)."""
        return self.host.addresses

    @property
    def urls(self) -> list[str]:
        return self.host.urls

    async def start(self) -> Self:
        await self.host.start()
        return self

    async def serve_forever(self, grace: float | None = None) -> None:
        """Start (unless started), serve until ``request_shutdown``, ``close`` or a signal,
        then stop gracefully."""
        await self.start()
        await self.host.stop_requested()
        await self.wait_closed(grace)

    def request_shutdown(self) -> None:
        self.host.request_shutdown()

    def install_signal_handlers(self, signals: Sequence[signal.Signals] = STOP_SIGNALS
                                ) -> Callable[[], None]:
        return self.host.install_signal_handlers(signals)

    def close(self) -> None:
        """Stop accepting and ask connections to finish (returns at once)."""
        self.host.close()

    def abort(self) -> None:
        self.host.abort()

    async def wait_closed(self, grace: float | None = None) -> None:
        await self.host.wait_closed(grace)

    async def aclose(self, grace: float | None = None) -> None:
        await self.wait_closed(grace)

    async def shutdown(self, grace: float | None = None) -> None:
        await self.wait_closed(grace)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


__all__ = ["DEFAULT_SHUTDOWN_TIMEOUT", "SETTLE_TIMEOUT", "Connection", "ConnectionRegistry",
           "Endpoint", "Hook", "HostedServer", "ServiceHost", "stream_endpoint"]
