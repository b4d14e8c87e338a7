"""``_loop.resume.resume_now`` and ``_loop.run``, on the stdlib event loop and on uvloop.

resume_now reads ``Future._callbacks``: these tests are the ones that fail first when an
asyncio (or uvloop) release changes what it relies on."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
from collections.abc import Callable

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


async def _a_task_waiting() -> tuple[asyncio.Future[int], list[object], asyncio.Task[int]]:
    """A task waiting on a new future; what it logs once resumed."""
    waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    log: list[object] = []
    task = asyncio.ensure_future(_waiting(waiter, log))
    await asyncio.sleep(0)  # the task waits on waiter now
    return waiter, log, task


async def _in_a_callback(step: Callable[[], object]) -> object:
    """``step()`` run in a plain loop callback (as a protocol's ``data_received`` is), not
    in a task, with a context of its own; its result."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[object] = loop.create_future()
    loop.call_soon(lambda: done.set_result(step()), context=contextvars.copy_context())
    return await done


@both_loops
async def test_the_waiting_task_runs_inside_the_callback() -> None:
    waiter, log, task = await _a_task_waiting()

    def step() -> list[object]:
        var.set("callback's")
        resume_now(asyncio.get_running_loop(), waiter, 7)
        return [*log, var.get()]  # the task already ran, and left our context alone

    assert await _in_a_callback(step) == [("resumed", 7, "task's own", task), "callback's"]
    assert await task == 7


@both_loops
async def test_from_inside_a_task_the_wakeup_is_scheduled_as_usual() -> None:
    waiter, log, task = await _a_task_waiting()
    # this test's task is running: the other cannot run inside it
    resume_now(asyncio.get_running_loop(), waiter, 8)
    assert log == [] and waiter.result() == 8
    assert await task == 8
    assert log == [("resumed", 8, "task's own", task)]


@both_loops
async def test_a_cancelled_waiter_is_left_alone() -> None:
    waiter, _, task = await _a_task_waiting()
    task.cancel()  # cancels the waiter it awaits
    with pytest.raises(asyncio.CancelledError):
        await task
    assert waiter.cancelled()
    await _in_a_callback(lambda: resume_now(asyncio.get_running_loop(), waiter, 1))
    assert waiter.cancelled()


@both_loops
async def test_a_waiter_with_more_callbacks_completes_the_usual_way() -> None:
    waiter, log, task = await _a_task_waiting()
    other: list[int] = []
    waiter.add_done_callback(lambda f: other.append(f.result()))

    def step() -> list[object]:
        resume_now(asyncio.get_running_loop(), waiter, 9)
        return list(log)  # nothing ran inline: two callbacks wait their turn

    assert await _in_a_callback(step) == []
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


_EXITING_TASK = """
import asyncio, socket, sys
from trunkline._loop.resume import resume_now

class Reader(asyncio.Protocol):
    def __init__(self, waiter):
        self.waiter = waiter

    def data_received(self, data):  # a transport's read callback resumes the task
        resume_now(asyncio.get_running_loop(), self.waiter, data)

async def main():
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    async def task():
        await waiter
        raise SystemExit(7)  # out of the task's step, inside resume_now

    asyncio.ensure_future(task())
    ours, theirs = socket.socketpair()
    await loop.connect_accepted_socket(lambda: Reader(waiter), ours)
    theirs.send(b"x")
    await asyncio.sleep(5)
    print("still running")

if sys.argv[1] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_systemexit_from_the_resumed_task_leaves_the_event_loop(loop_name: str) -> None:
    """As from a task stepped by the loop: the process exits with the task's status (not
    through the transport's error path, which would log it and go on)."""
    if loop_name == "uvloop" and not have_uvloop():
        pytest.skip("uvloop is not installed")
    done = subprocess.run([sys.executable, "-c", _EXITING_TASK, loop_name],
                          capture_output=True, text=True, timeout=20, check=False)
    assert (done.returncode, done.stdout) == (7, "")
