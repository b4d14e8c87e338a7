"""Resume a task waiting on one of our futures now, instead of one loop iteration later.

A protocol callback that completes a waiter future normally has the waiting task stepped by
the event loop later (``set_result`` -> ``call_soon`` -> a handle -> the task's wakeup). When
the future's only callback is that wakeup, the callback can take it off, complete the future
(so nothing is scheduled) and call it at once in the task's context: the task runs inside the
callback, as a plain protocol's code would. That is one ``call_soon`` handle and one pass
through the ready queue less per message.

It cannot run while another task is running (a task may not start inside another): then the
wakeup is scheduled as usual. ``KeyboardInterrupt``/``SystemExit`` out of the task leave the
event loop from a ready callback, as they would have, not through the transport's error path.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, TypeVar

T = TypeVar("T")


def resume_now(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[T], result: T) -> bool:
    """``waiter.set_result(result)``, running its waiting task now when it can. A done
    (cancelled) waiter is left alone: False (the result went nowhere), else True."""
    try:
        # Exactly one callback (the waiting task's wakeup), unpacked in one step: cheaper than
        # testing for None and the length first, and an unpacking that fails costs only then.
        [(wakeup, context)] = waiter._callbacks
    except (TypeError, ValueError):  # None (done, or nobody waits on it yet), or several
        if waiter.done():
            return False
        waiter.set_result(result)
        return True
    waiter.remove_done_callback(wakeup)
    waiter.set_result(result)
    try:
        context.run(wakeup, waiter)
    except (RuntimeError, KeyboardInterrupt, SystemExit) as exc:
        resume_failed(loop, exc, wakeup, waiter, context)
    return True


def resume_failed(loop: asyncio.AbstractEventLoop, exc: BaseException, wakeup: Any,
                  waiter: asyncio.Future[Any], context: contextvars.Context) -> None:
    """After ``context.run(wakeup, waiter)`` raised ``exc``."""
    if isinstance(exc, RuntimeError):
        # A task is running (it called us), or the task's context is in use: neither the
        # context nor the task was entered, so wake it the usual way.
        loop.call_soon(wakeup, waiter, context=context)
    else:
        loop.call_soon(_reraise, exc)


def _reraise(exc: BaseException) -> None:
    raise exc
