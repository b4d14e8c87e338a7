"""Calling a service by name: ``svc://users`` -> the caller's ranked candidates -> a socket.

    stream = await trunkline.connect("svc://users")                  # raw stream
    async with trunkline.Client() as c: await c.get("http+svc://users/path")

Rules:
- The lookup is the resolver's cached answer (``Resolver.cached``: no I/O once the registry
  was read); only a name never seen reads the registry, once.
- The lookup is a traced step of its own, ``discover``: backend, instances seen, the
  ranking with each address's reason, the chosen one, and the stale mark when the registry
  is away and this is its last view.
- A candidate that does not take the connection (refused, gone, timed out) is marked
  failed in the resolver (left out of answers for its TTL, or for good when its process is
  gone) and the next one is tried (the same instance's next address, then the next
  instance), all within the caller's one connect timeout.
- Without a resolver of their own, callers share one per registry URL and event loop
  (``shared_resolver``), so one-shot ``connect``/``websocket`` calls by name are served from
  memory too; ``aclose_shared_resolvers`` ends them.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..errors import (
    ConnectError,
    PeerNotAllowedError,
    TrunklineTimeoutError,
)
from ..registry.ranking import Candidate, Resolution
from ..registry.resolver import Resolver
from ..registry.url import open_registry, registry_url
from ..trace.events import Step, Tracer

T = TypeVar("T")
RegistryInput = str | Resolver | None

#: errors that mean "this address did not take the connection": try the next one
DIAL_ERRORS: tuple[type[BaseException], ...] = (ConnectError, PeerNotAllowedError,
                                                TrunklineTimeoutError, TimeoutError,
                                                ConnectionError, FileNotFoundError)

_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Resolver]] = \
    weakref.WeakKeyDictionary()


def shared_resolver(registry: str | None = None) -> Resolver:
    """The resolver this event loop shares for ``registry`` (a URL, or the default one)."""
    url = str(registry_url(registry))
    per_loop = _shared.setdefault(asyncio.get_running_loop(), {})
    resolver = per_loop.get(url)
    if resolver is None:
        resolver = per_loop[url] = Resolver(open_registry(url), owns_store=True)
    return resolver


async def aclose_shared_resolvers() -> None:
    """Stop this loop's shared resolvers (their watch tasks and store connections)."""
    per_loop = _shared.pop(asyncio.get_running_loop(), {})
    for resolver in per_loop.values():
        await resolver.aclose()


def resolver_for(registry: RegistryInput) -> Resolver:
    return registry if isinstance(registry, Resolver) else shared_resolver(registry)


async def discover(resolver: Resolver, name: str, *, prefer: str | None = None,
                   datagram: bool = False, tracer: Tracer | None = None, conn: int = 0
                   ) -> Resolution:
    """The caller's answer for ``name`` (cached when possible), traced as ``discover``.
    ``ResolveError`` when no live instance is reachable from here."""
    start = time.monotonic_ns() if tracer is not None else 0
    answer = resolver.cached(name, prefer, datagram)
    cached = answer is not None
    if answer is None:
        answer = await resolver.resolve(name, prefer=prefer, datagram=datagram)
    elif not answer.candidates:
        await resolver.resolve(name, prefer=prefer, datagram=datagram)  # raises, with why
    if tracer is not None:
        record_discover(tracer, answer, start, conn, cached)
    return answer


def record_discover(tracer: Tracer, answer: Resolution, start_ns: int, conn: int,
                    cached: bool, failed: str | None = None, error: str | None = None) -> None:
    best = answer.candidates[0] if answer.candidates else None
    detail: dict[str, Any] = {
        "service": answer.service, "backend": answer.backend, "instances": answer.instances,
        "cached": cached, "stale": answer.stale,
        "chosen": best.url if best else None,
        "chosen_kind": best.kind if best else None,
        "reason": best.reason if best else None,
        "ranking": [f"{c.url} ({c.reason})" for c in answer.candidates],
        "skipped": [f"{s.url} ({s.reason})" for s in answer.skipped],
    }
    if answer.prefer is not None:
        detail["prefer"] = answer.prefer
    if failed is not None:
        detail["failed"] = failed
        detail["error"] = error
    tracer.record(Step.DISCOVER, "client", start_ns, conn, **detail)


async def dial(answer: Resolution, open_one: Callable[[Candidate, float | None], Awaitable[T]],
               resolver: Resolver, *, timeout: float | None,
               tracer: Tracer | None = None, conn: int = 0,
               passes: tuple[type[BaseException], ...] = ()) -> tuple[T, Candidate]:
    """``open_one(candidate, time_left)`` on each candidate in turn until one connects;
    refusing ones are marked failed (errors of the ``passes`` types say nothing about the
    address, e.g. a busy pool, and are raised as they are). Raises the last error (as
    ``ConnectError`` naming every address tried) when none did, ``TrunklineTimeoutError``
    when ``timeout`` ran out."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    tried: list[str] = []
    last: BaseException | None = None
    for number, candidate in enumerate(answer.candidates):
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            break
        try:
            return await open_one(candidate, left), candidate
        except DIAL_ERRORS as exc:
            if isinstance(exc, passes):
                raise
            last = exc
            tried.append(f"{candidate.url}: {exc}")
            resolver.mark_failed(candidate, exc)
            if tracer is not None and number + 1 < len(answer.candidates):
                rest = Resolution(answer.service, answer.candidates[number + 1:],
                                  answer.skipped, answer.instances, answer.backend,
                                  answer.stale, answer.prefer)
                record_discover(tracer, rest, time.monotonic_ns(), conn, True,
                                failed=candidate.url, error=str(exc))
    if last is None or (deadline is not None and loop.time() >= deadline):
        raise TrunklineTimeoutError(
            f"service {answer.service!r}: no address took a connection within {timeout} s"
            + (f" (tried {'; '.join(tried)})" if tried else "") + "; raise the timeout")
    message = (f"service {answer.service!r}: no instance took the connection (tried "
               f"{'; '.join(tried)})")
    errno = last.errno if isinstance(last, OSError) else None
    raise (ConnectError(errno, message) if errno else ConnectError(message)) from last


__all__ = ["DIAL_ERRORS", "aclose_shared_resolvers", "dial", "discover", "record_discover",
           "resolver_for", "shared_resolver"]
