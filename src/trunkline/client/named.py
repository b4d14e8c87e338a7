"""``http+svc://NAME/...`` for a ``Client``: the resolver, a pool per candidate address, and
the walk down the ranking when an address refuses.

Hot path: the resolver's cached answer (a dictionary lookup and an index) and, when its best
address has a kept-alive connection, that pool's ``acquire``, nothing else; the full path
(traced ``discover``, first read of the registry, failover) runs only when connecting.
"""

from __future__ import annotations

from collections.abc import Callable

from ..address import FdAddress, ServiceAddress, TcpAddress, UdpAddress
from ..aio.by_name import DIAL_ERRORS, dial, discover
from ..registry.ranking import Candidate, check_prefer
from ..registry.resolver import Resolver
from ..registry.url import open_registry
from ..trace.events import Tracer
from .connection import HttpClientConnection
from .errors import PoolTimeoutError
from .pool import Pool, PoolKey


class NamedRoutes:
    """One client's calls by name. ``registry``: a URL, a ``Resolver`` (kept open: the
    caller's), or None for the default registry; ``pool_for(key)`` gives the client's pool."""

    def __init__(self, registry: str | Resolver | None, prefer: str | None,
                 pool_for: Callable[[PoolKey], Pool]) -> None:
        self.prefer = check_prefer(prefer)
        self._registry = registry
        self._owned = not isinstance(registry, Resolver)
        self.resolver: Resolver | None = registry if isinstance(registry, Resolver) else None
        self._pool_for = pool_for
        self._by_url: dict[str, Pool] = {}  # a candidate's URL -> its pool

    async def acquire(self, service: str, connect_timeout: float | None,
                      pool_timeout: float | None, tracer: Tracer | None
                      ) -> HttpClientConnection:
        resolver = self.resolver
        if resolver is not None and tracer is None:
            answer = resolver.cached(service, self.prefer)
            if answer is not None and answer.candidates:
                best = self._by_url.get(answer.candidates[0].url)
                if best is not None and best.idle:
                    try:
                        conn, _ = await best.acquire(connect_timeout=connect_timeout,
                                                     pool_timeout=pool_timeout, tracer=None)
                        return conn
                    except PoolTimeoutError:
                        raise
                    except DIAL_ERRORS as exc:  # the full path below moves on
                        resolver.mark_failed(answer.candidates[0], exc)
        return await self._connect(service, connect_timeout, pool_timeout, tracer)

    async def _connect(self, service: str, connect_timeout: float | None,
                       pool_timeout: float | None, tracer: Tracer | None
                       ) -> HttpClientConnection:
        resolver = self.resolver
        if resolver is None:
            registry = self._registry
            assert not isinstance(registry, Resolver)
            resolver = self.resolver = Resolver(open_registry(registry), owns_store=True)
        answer = await discover(resolver, service, prefer=self.prefer, tracer=tracer)

        async def open_one(candidate: Candidate, left: float | None) -> HttpClientConnection:
            pool = self._by_url.get(candidate.url)
            if pool is None:
                pool = self._by_url[candidate.url] = self._pool_for(_pool_key(candidate))
            conn, _ = await pool.acquire(connect_timeout=left, pool_timeout=pool_timeout,
                                         tracer=tracer)
            return conn

        conn, _ = await dial(answer, open_one, resolver, timeout=connect_timeout,
                             tracer=tracer, passes=(PoolTimeoutError,))  # busy, not down
        return conn

    async def aclose(self) -> None:
        self._by_url.clear()
        if self.resolver is not None and self._owned:
            await self.resolver.aclose()


def _pool_key(candidate: Candidate) -> PoolKey:
    address = candidate.address
    assert not isinstance(address, UdpAddress | ServiceAddress | FdAddress)
    tls = isinstance(address, TcpAddress) and address.tls
    return (address, tls, address.host if isinstance(address, TcpAddress) and tls else None)


__all__ = ["NamedRoutes"]
