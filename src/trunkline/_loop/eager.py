"""Run handler calls eagerly, with a real task as their current task.

Python 3.11 has no eager tasks, and ``create_task`` per call is costly: a Task (registered in
a ``WeakSet``), a ``call_soon`` for its first step and another for its done callbacks. That
was most of a served UDP round trip's Python time, and most datagram handlers finish without
ever waiting. ``EagerRunner.run(coro)`` instead steps ``coro`` at once, inside the caller (a
protocol callback), with a *stand-in* task entered as the current task, so
``asyncio.current_task()``, ``asyncio.timeout`` and ``TaskGroup`` work as they do in a task:

- ``coro`` finishes: that is all (no task was created).
- ``coro`` has to wait: the stand-in task takes it over, so the task a timeout or task group
  saw is the one that goes on running it, and a new stand-in starts for later calls.

Each call sees the context a task of its own would have: the stand-in's context is a copy
of the caller's, and a call that finishes having changed it retires that stand-in, so the
next call starts from a fresh copy. Calls that finish without waiting share their stand-in
task object (``current_task()`` is the same one), the one difference from a task per call.
While no stand-in is ready (the first calls, right after a hand-over) or when called from
inside a running task, a call gets its own task, as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import dis
import inspect
import logging
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, Protocol

from .resume import resume_now

# Entering a task from a callback: what the event loop does around each task step. Private
# asyncio functions (in 3.11 to 3.13); without them, every call gets a task of its own.
_enter_task = getattr(asyncio.tasks, "_enter_task", None)
_leave_task = getattr(asyncio.tasks, "_leave_task", None)
EAGER = _enter_task is not None and _leave_task is not None

log = logging.getLogger("trunkline.server")

Call = Coroutine[Any, Any, None]
_DONE = object()
START = object()  # ``resume``'s ``yielded`` for a call not stepped yet (see ``call``)
PENDING = object()  # ``call``'s answer: the call goes on in a task
_COROUTINE = types.CoroutineType


class Resumer(Protocol):
    def resume(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> Call: ...


class _StandIn:
    __slots__ = ("task", "job", "job_done", "context", "size", "baseline")

    def __init__(self, task: asyncio.Task[None], job: asyncio.Future[tuple[Call, Any]],
                 context: contextvars.Context) -> None:
        self.task = task
        self.job = job  # completed with (coroutine, what it yielded) to hand a call over
        self.job_done = job.done  # bound once: looking the method up on a Future is slow
        self.context = context
        self.size = len(context)
        self.baseline = list(context.items()) if self.size else []

    def context_changed(self) -> bool:
        context = self.context
        if len(context) != self.size:
            return True
        return any(context[var] is not value for var, value in self.baseline)


class EagerRunner:
    """Runs coroutines eagerly (see the module docstring); ``tasks`` holds those running in
    a task (waiting), for ``close`` to cancel and ``wait_closed`` to wait for. Pass
    ``tasks`` to have them counted in a set of your own (a host's drain waits for them)."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 tasks: set[asyncio.Task[Any]] | None = None) -> None:
        self.loop = loop
        self.tasks: set[asyncio.Task[Any]] = set() if tasks is None else tasks
        self._ready: _StandIn | None = None
        self._idle: asyncio.Task[None] | None = None  # the stand-in, ready or starting
        self._closed = False

    def start(self) -> None:
        """Start a stand-in now, so that it is ready for the first call."""
        if self._idle is None and not self._closed and EAGER:
            context = contextvars.copy_context()
            job: asyncio.Future[tuple[Call, Any]] = self.loop.create_future()
            self._idle = self.loop.create_task(self._stand_in(job, context), context=context)

    def run(self, coro: Call) -> None:
        stand_in = self._ready
        if stand_in is None or stand_in.job_done():
            self._in_task(coro)
            self.start()
            return
        task = stand_in.task
        try:
            _enter_task(self.loop, task)  # type: ignore[misc]  # (not None: EAGER)
        except RuntimeError:  # called from inside a running task: it cannot run here
            self._in_task(coro)
            return
        try:
            # next(iterator, _DONE), not coro.send(None): a coroutine that returns None then
            # ends without a StopIteration raised and caught here (next() sees none in C).
            yielded = stand_in.context.run(next, coro.__await__(), _DONE)
        except StopIteration:  # it returned something other than None
            yielded = _DONE
        except BaseException as exc:  # noqa: BLE001  (what a task would have kept)
            yielded = _DONE
            self._failed(exc)
        finally:
            _leave_task(self.loop, task)  # type: ignore[misc]
        if yielded is _DONE:
            # (an empty context that stayed empty cannot have changed: no call to check it)
            if (stand_in.size or len(stand_in.context)) and stand_in.context_changed():
                self._retire(stand_in)
            return
        self._hand_over(stand_in, coro, yielded)

    def call(self, coro: Coroutine[Any, Any, Any], owner: Resumer,
             returns_none: bool = False) -> Any:
        """``run`` for a caller that takes the outcome itself, so that no wrapper coroutine
        has to be stepped around ``coro`` on the common path: when ``coro`` finishes at once,
        this returns what it returned or raises what it raised (the stand-in left). When it
        has to wait, or cannot run here, ``owner.resume(coro, yielded)`` goes on with it in a
        task and ``PENDING`` is returned; ``resume`` awaits ``adopt(coro, yielded)``
        (``yielded`` is ``START`` for a call not stepped yet) and handles the outcome as the
        caller does. ``returns_none``: ``coro`` can only return None (``returns_none(f)`` of
        the function that made it), so it is stepped in a way that drops the value."""
        stand_in = self._ready
        if (stand_in is None or stand_in.job.done()
                or type(coro) is not _COROUTINE):  # (any other awaitable: a task)
            self._in_task(owner.resume(coro, START))
            self.start()
            return PENDING
        task = stand_in.task
        try:
            _enter_task(self.loop, task)  # type: ignore[misc]  # (not None: EAGER)
        except RuntimeError:  # called from inside a running task: it cannot run here
            self._in_task(owner.resume(coro, START))
            return PENDING
        try:
            if returns_none:
                # next(iterator, _DONE) ends a call that returns None with no StopIteration
                # made and caught here (~1.3k instructions less); it would drop any other
                # value, which returns_none ruled out.
                yielded = stand_in.context.run(next, coro.__await__(), _DONE)
            else:
                yielded = stand_in.context.run(coro.send, None)
        except StopIteration as stop:  # it returned
            _leave_task(self.loop, task)  # type: ignore[misc]
            if (stand_in.size or len(stand_in.context)) and stand_in.context_changed():
                self._retire(stand_in)
            return stop.value
        except BaseException:
            _leave_task(self.loop, task)  # type: ignore[misc]
            if (stand_in.size or len(stand_in.context)) and stand_in.context_changed():
                self._retire(stand_in)
            raise
        _leave_task(self.loop, task)  # type: ignore[misc]
        if yielded is _DONE:  # (returns_none: it returned None)
            if (stand_in.size or len(stand_in.context)) and stand_in.context_changed():
                self._retire(stand_in)
            return None
        wrapper = owner.resume(coro, yielded)
        wrapper.send(None)  # (runs to adopt's first step, which yields ``yielded`` again)
        self._hand_over(stand_in, wrapper, yielded)
        return PENDING

    def failed(self, exc: BaseException) -> None:
        """What a task does with ``exc`` raised by its coroutine (for ``call``'s callers)."""
        self._failed(exc)

    def _hand_over(self, stand_in: _StandIn, coro: Call, yielded: Any) -> None:
        """``coro`` has to wait: its stand-in task runs it from here on."""
        self._ready = self._idle = None
        if stand_in.job.done():  # the call cancelled its (stand-in) task: as a task would,
            cancel = getattr(yielded, "cancel", None)  # it learns at the await it reached
            if cancel is not None:
                cancel()
            self._track(self.loop.create_task(_adopted(coro, yielded),
                                              context=stand_in.context))
        else:
            self._track(stand_in.task)
            resume_now(self.loop, stand_in.job, (coro, yielded))
        self.start()

    async def _stand_in(self, job: asyncio.Future[tuple[Call, Any]],
                        context: contextvars.Context) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._ready = _StandIn(task, job, context)
        try:
            coro, yielded = await job
        finally:
            if self._ready is not None and self._ready.task is task:
                self._ready = None
            if self._idle is task:
                self._idle = None
        await _adopt(coro, yielded)

    def _retire(self, stand_in: _StandIn) -> None:
        """The call changed the stand-in's context: later calls get a fresh one."""
        self._ready = self._idle = None
        stand_in.job.cancel()  # its task ends
        self.start()

    def _in_task(self, coro: Call) -> None:
        self._track(self.loop.create_task(coro))

    def _track(self, task: asyncio.Task[None]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            self.loop.call_soon(_reraise, exc)  # out of the event loop, as from a task
        elif not isinstance(exc, asyncio.CancelledError):
            self.loop.call_exception_handler({"message": "eagerly run call failed",
                                              "exception": exc})

    def stop(self) -> None:
        """No more eager calls: the idle stand-in ends (later calls each get a task); calls
        still running go on."""
        self._closed = True
        self._ready = None
        if self._idle is not None:
            self._idle.cancel()

    def close(self) -> None:
        """Cancel the calls still running, and the idle stand-in."""
        self.stop()
        for task in self.tasks:
            task.cancel()

    async def wait_closed(self) -> None:
        pending = set(self.tasks)
        if self._idle is not None:
            pending.add(self._idle)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def returns_none(func: object) -> bool:
    """Whether ``func`` is an ``async def`` function (or bound method, or an object whose
    class's ``__call__`` is one: Starlette's, FastAPI's apps) whose calls can only return
    None, as its bytecode shows: every return returns the constant None (``return``,
    ``return None``, the end) and no jump lands on one. False when unsure: another value,
    anything else. (For ``EagerRunner.call``'s ``returns_none``.)"""
    if not hasattr(func, "__code__"):
        # (what calling the object runs: its class's __call__, found without running a
        # descriptor)
        call = inspect.getattr_static(type(func), "__call__", None)
        if isinstance(call, types.FunctionType):
            func = call
    code = getattr(func, "__code__", None)
    if not isinstance(code, types.CodeType) or not code.co_flags & inspect.CO_COROUTINE:
        return False
    previous = None
    for instruction in dis.get_instructions(code):
        op = instruction.opname
        if op == "RETURN_CONST" and instruction.argval is not None:  # (3.12+)
            return False
        if op == "RETURN_VALUE" and (
                instruction.is_jump_target or previous is None
                or previous.opname != "LOAD_CONST" or previous.argval is not None):
            return False
        previous = instruction
    return True


@types.coroutine
def _adopt(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Go on running ``coro``, which was stepped elsewhere and yielded ``yielded``: yield that
    to our task as if ``coro`` had yielded it here, then pass everything through, as
    ``await`` does. (A future it yielded is still marked as awaited, as the task expects.)"""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001  (thrown in by our task: pass it on)
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:  # (its result: what ``adopt`` gives back)
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:  # (its result: what ``adopt`` gives back)
                return stop.value


def adopt(coro: Coroutine[Any, Any, Any], yielded: Any) -> Awaitable[Any]:
    """What ``call``'s ``resume`` awaits: ``coro`` from where it stands."""
    if yielded is START:
        return coro
    return _adopt(coro, yielded)


async def _adopted(coro: Call, yielded: Any) -> None:
    await _adopt(coro, yielded)


def _reraise(exc: BaseException) -> None:
    raise exc
