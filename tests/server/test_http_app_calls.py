"""App calls run inside the read callback (``_loop.eager``) and answers are written at the end
of the loop pass (``server.writes``); the access log is written in batches. What an app and a
log handler see must not change: a current task, working timeouts, a fresh context per
request, background work a stop waits for, one record per request with its own time.
Real sockets, both event loops."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time

import pytest

from tests.support.http_server_support import Raw, running
from trunkline.server.cycle import Receive, Scope, Send

pytestmark = [pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"]), pytest.mark.timeout(30)]

GET = b"GET /%s HTTP/1.1\r\nHost: t\r\n\r\n"
request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


async def answer(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def test_an_app_has_a_task_a_working_timeout_and_a_fresh_context() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        seen = request_var.get()  # a value set by an earlier request must not show here
        request_var.set(scope["path"])
        has_task = asyncio.current_task() is not None
        timed_out = False
        if scope["path"] == "/wait":
            try:
                async with asyncio.timeout(0.01):
                    await asyncio.Event().wait()
            except TimeoutError:
                timed_out = True
        await answer(send, f"{seen} {has_task} {timed_out}".encode())

    async with running(app, access_log=False) as server:
        raw = await Raw.open(server.urls[0])
        bodies = []
        for path in (b"a", b"wait", b"b", b"c"):
            await raw.send(GET % path)
            status, _, body = await raw.read_response()
            assert status == 200
            bodies.append(body)
        await raw.close()
    assert bodies == [b"unset True False", b"unset True True", b"unset True False",
                      b"unset True False"]


async def test_background_work_after_the_answer_is_waited_for_on_stop() -> None:
    finished = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await answer(send, b"ok")
        await asyncio.sleep(0.05)  # work after the answer: the stop must wait for it
        finished.append(scope["path"])

    async with running(app, access_log=False) as server:
        raw = await Raw.open(server.urls[0])
        await raw.send(GET % b"later")
        assert (await raw.read_response())[2] == b"ok"
        await raw.close()
    assert finished == ["/later"]


async def test_pipelined_answers_keep_their_order_whether_or_not_the_app_waits() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].startswith("/slow"):
            await asyncio.sleep(0)  # this call goes on in a task
        await answer(send, scope["path"].encode())

    paths = [b"fast1", b"slow1", b"fast2", b"slow2", b"fast3"]
    async with running(app, access_log=False) as server:
        raw = await Raw.open(server.urls[0])
        await raw.send(b"".join(GET % p for p in paths))
        bodies = [(await raw.read_response())[2] for _ in paths]
        await raw.close()
    assert bodies == [b"/" + p for p in paths]


async def test_access_records_carry_their_answers_time_and_fields(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "trunkline.access")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await answer(send, b"hello")

    async with running(app) as server:
        raw = await Raw.open(server.urls[0])
        await raw.send(GET % b"one?x=1")
        await raw.read_response()
        answered = time.time()
        await raw.close()
    records = [r for r in caplog.records if r.name == "trunkline.access"]
    assert len(records) == 1
    [record] = records
    # Written when the server stopped, stamped when the answer went out.
    assert record.created <= answered
    assert record.getMessage().endswith('"GET /one?x=1 HTTP/1.1" 200 5')
    fields = vars(record)
    assert {k: fields[k] for k in ("method", "path", "status", "bytes")} == {
        "method": "GET", "path": "/one?x=1", "status": 200, "bytes": 5}
    assert fields["transport"].startswith("tcp 127.0.0.1:")


async def test_an_app_that_returns_a_value_is_logged_whether_it_waited_or_not(
        caplog: pytest.LogCaptureFixture) -> None:
    # An app whose bytecode shows it returns only None is stepped without reading the value
    # (_loop.eager.returns_none); any other app's value is still read and logged.
    from trunkline._loop.eager import returns_none

    async def app(scope: Scope, receive: Receive, send: Send) -> object:
        if scope["type"] != "http":
            return None
        if scope["path"] == "/wait":
            await asyncio.sleep(0)
        await answer(send, b"ok")
        return scope["path"]

    async def quiet(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/wait":
            await asyncio.sleep(0)
        await answer(send, b"ok")

    assert not returns_none(app) and returns_none(quiet)
    caplog.set_level(logging.ERROR, "trunkline.server")
    for which in (app, quiet):
        async with running(which, access_log=False) as server:
            raw = await Raw.open(server.urls[0])
            for path in (b"now", b"wait"):
                await raw.send(GET % path)
                assert (await raw.read_response())[0] == 200
            await raw.close()
    returned = [r.getMessage() for r in caplog.records if "instead of None" in r.getMessage()]
    assert returned == ["ASGI app returned '/now' instead of None",
                        "ASGI app returned '/wait' instead of None"], returned
