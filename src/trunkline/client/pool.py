"""Connection pools: one per resolved address (transport address, TLS, TLS server name).

Rules:
- Idle connections are reused last-in first-out (the warmest socket first); one that the
  server closed, or that sat idle past ``keepalive_expiry``, is dropped when met.
- At most ``max_connections`` per pool are open or opening; further requests wait in
  arrival order, and a released connection goes straight to the first waiter.
- At most ``max_keepalive`` idle connections are kept; extra ones are closed on release.
- The count drops exactly once per connection, when it closes (``HttpClientConnection.on_close``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque

from ..address import StreamAddress
from ..trace.events import Step, Tracer
from ..transport.tcp import Resolver
from .connect import open_connection
from .connection import HttpClientConnection
from .errors import PoolTimeoutError
from .models import Limits

PoolKey = tuple[StreamAddress, bool, str | None]


class Pool:
    """Connections to one address."""

    def __init__(self, key: PoolKey, limits: Limits, ssl_context: ssl.SSLContext | None,
                 resolver: Resolver | None = None) -> None:
        self.key = key
        self.resolver = resolver
        self.limits = limits
        self.ssl_context = ssl_context
        self.idle: deque[HttpClientConnection] = deque()
        self.open_count = 0  # open or opening
        self.opened = 0  # connections opened over the pool's life (for tests and stats)
        self._waiters: deque[asyncio.Future[HttpClientConnection | None]] = deque()
        self._closed = False

    async def acquire(self, *, connect_timeout: float | None, pool_timeout: float | None,
                      tracer: Tracer | None) -> tuple[HttpClientConnection, bool]:
        """A connection ready for one request, and whether it is a reused one."""
        idle = self.idle
        if idle:
            now = -1.0
            expiry = self.limits.keepalive_expiry
            while idle:
                conn = idle.pop()
                if not conn.usable:
                    continue
                if now < 0:
                    now = conn.loop.time()
                if now - conn.idle_since > expiry:
                    conn.close()
                    continue
                if tracer is not None:
                    self._retrace(conn, tracer)
                    tracer.record(Step.REUSE, "client", time.monotonic_ns(), conn.conn_id,
                                  requests=conn.requests)
                return conn, True
        while self.open_count >= self.limits.max_connections:
            handed = await self._wait(pool_timeout)
            if handed is not None:
                if tracer is not None:
                    self._retrace(handed, tracer)
                    tracer.record(Step.REUSE, "client", time.monotonic_ns(), handed.conn_id,
                                  requests=handed.requests)
                return handed, True
        self.open_count += 1
        try:
            address, tls, server_hostname = self.key
            conn = await open_connection(address, tls=tls, server_hostname=server_hostname,
                                         ssl_context=self.ssl_context, timeout=connect_timeout,
                                         tracer=tracer, resolver=self.resolver)
        except BaseException:
            self.open_count -= 1
            self._wake_one(None)
            raise
        self.opened += 1
        conn.on_release = self._release
        conn.on_close = self._discard
        if self._closed:
            conn.close()
        return conn, False

    async def _wait(self, timeout: float | None) -> HttpClientConnection | None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[HttpClientConnection | None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except BaseException as exc:
            # A connection (or a free slot) may have been handed over just as we gave up:
            # pass it on, or it would be lost to the pool.
            if waiter.done() and not waiter.cancelled():
                conn = waiter.result()
                if conn is not None:
                    self._release(conn)
                else:
                    self._wake_one(None)
            if isinstance(exc, TimeoutError):
                raise PoolTimeoutError(
                    f"all {self.limits.max_connections} connections to this address stayed "
                    f"busy for {timeout} s (pool timeout); raise Limits.max_connections or "
                    "the pool timeout") from None
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _wake_one(self, conn: HttpClientConnection | None) -> bool:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def _release(self, conn: HttpClientConnection) -> None:
        tracer = conn.tracer
        if tracer is not None:
            tracer.record(Step.RELEASE, "client", time.monotonic_ns(), conn.conn_id,
                          requests=conn.requests)
        if self._closed or not conn.usable:
            conn.close()
            return
        if self._waiters and self._wake_one(conn):
            return
        if len(self.idle) >= self.limits.max_keepalive:
            conn.close()
            return
        self.idle.append(conn)

    def _discard(self, conn: HttpClientConnection) -> None:
        self.open_count -= 1
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        if self._waiters:
            self._wake_one(None)

    @staticmethod
    def _retrace(conn: HttpClientConnection, tracer: Tracer) -> None:
        if conn.tracer is not tracer:  # a request with another tracer: number it there
            conn.tracer = tracer
            conn.conn_id = tracer.new_connection()

    def close(self) -> None:
        self._closed = True
        while self.idle:
            self.idle.pop().close()


__all__ = ["Pool", "PoolKey"]
