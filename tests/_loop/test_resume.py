"""``_loop.resume.resume_now`` and ``_loop.run``, on the stdlib event loop and on uvloop.

resume_now reads ``Future._callbacks``: these tests are the ones that fail first when an
asyncio (or uvloop) release changes what it relies on."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from trunkline._loop import have_uvloop, run
from trunkline._loop.resume import resume_now

pytestmark = pytest.mark.timeout(30)
both_loops = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def _waiting(waiter: asyncio.Future[int], log: list[object]) -> int:
    var.set("task's own")
    value = await waiter
    log.append(("resumed", value, var.get(), asyncio.current_task()))
    return value


@both_loops
async def test_the_waiting_task_runs_inside_the_callback() -> None:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[int] = loop.create_future()
    log: list[object] = []
    task = asyncio.ensure_future(_waiting(waiter, log))
    await asyncio.sleep(0)  # the task waits on waiter now
    seen_in_callback: list[object] = []
    done = loop.create_future()

    def callback() -> None:  # a plain loop callback, as a protocol's data_received is
        var.set("callback's")
        resume_now(loop, waiter, 7)
        seen_in_callback.extend(log)  # the task already ran, inside resume_now
        seen_in_callback.append(var.get())  # and left our context alone
        done.set_result(None)

    loop.call_soon(callback, context=contextvars.copy_context())
    await done
    assert seen_in_callback == [("resumed", 7, "task's own", task), "callback's"]
    assert await task == 7


@both_loops
async def test_from_inside_a_task_the_wakeup_is_scheduled_as_usual() -> None:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[int] = loop.create_future()
    log: list[object] = []
    task = asyncio.ensure_future(_waiting(waiter, log))
    await asyncio.sleep(0)
    resume_now(loop, waiter, 8)  # this test's task is running: the other cannot run here
    assert log == [] and waiter.result() == 8
    assert await task == 8
    assert log == [("resumed", 8, "task's own", task)]


@both_loops
async def test_a_cancelled_waiter_is_left_alone() -> None:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[int] = loop.create_future()
    task = asyncio.ensure_future(_waiting(waiter, []))
    await asyncio.sleep(0)
    task.cancel()  # cancels the waiter it awaits
    with pytest.raises(asyncio.CancelledError):
        await task
    assert waiter.cancelled()
    done = loop.create_future()

    def callback() -> None:
        resume_now(loop, waiter, 1)
        done.set_result(None)

    loop.call_soon(callback)
    await done
    assert waiter.cancelled()


@both_loops
async def test_a_waiter_with_more_callbacks_completes_the_usual_way() -> None:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[int] = loop.create_future()
    log: list[object] = []
    task = asyncio.ensure_future(_waiting(waiter, log))
    await asyncio.sleep(0)
    other: list[int] = []
    waiter.add_done_callback(lambda f: other.append(f.result()))
    done = loop.create_future()

    def callback() -> None:
        resume_now(loop, waiter, 9)
        done.set_result(list(log))  # nothing ran inline: two callbacks wait their turn

    loop.call_soon(callback)
    assert await done == []
    assert await task == 9
    assert other == [9]


@both_loops
async def test_a_future_nobody_awaits_gets_its_result() -> None:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[int] = loop.create_future()
    resume_now(loop, waiter, 3)
    assert waiter.result() == 3


def test_run_picks_the_loop() -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run(loop_module(), use_uvloop=False).startswith("asyncio")
    if have_uvloop():
        assert run(loop_module()).startswith("uvloop")
