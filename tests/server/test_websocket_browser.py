"""A real browser speaks WebSocket to a trunkline server: headless Chromium loads a page that
trunkline serves, the page opens a WebSocket back to the same origin, and both ends send at
once (the server pushes numbered messages while the page sends its own and the server acks
them). The test checks what the page received (read out of the page over the DevTools
protocol) and what the server received from the page, text and binary, and the close.

Chromium is driven over ``--remote-debugging-pipe`` (fds 3 and 4, NUL-separated JSON): no
port, no driver binary, no extra Python package. Needs Debian's ``chromium`` (CI installs
it); the test fails, rather than skips, without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.trace.test_trace_browser import chromium
from trunkline.server import AppServer, ServerConfig
from trunkline.server.cycle import Receive, Scope, Send

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--remote-debugging-pipe"]
PUSHES = 5  # numbered messages the server pushes without being asked
SENDS = 5  # numbered messages the page sends; the server acks each

PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>trunkline WebSocket</title></head>
<body><ol id="got"></ol>
<script>
const SENDS = %d, PUSHES = %d;
const got = [];
window.finished = new Promise((resolve, reject) => {
  const ws = new WebSocket("ws://" + location.host + "/ws");
  ws.binaryType = "arraybuffer";
  const expected = PUSHES + SENDS + 1;  // pushes, acks, one binary echo
  ws.onopen = () => {
    for (let i = 0; i < SENDS; i++) ws.send("page " + i);
    ws.send(new Uint8Array([0, 1, 2, 255]));
  };
  ws.onmessage = (event) => {
    const text = typeof event.data === "string" ? event.data
      : "binary " + Array.from(new Uint8Array(event.data)).join(",");
    got.push(text);
    const item = document.createElement("li");
    item.textContent = text;
    document.getElementById("got").appendChild(item);
    if (got.length === expected) ws.close(1000, "page done");
  };
  ws.onclose = (event) => resolve({got: got, code: event.code, reason: event.reason,
                                   clean: event.wasClean});
  ws.onerror = () => reject(new Error("WebSocket error after " + got.length + " messages"));
});
</script></body></html>
""" % (SENDS, PUSHES)


class PushAndAck:
    """GET / is the page; /ws pushes PUSHES numbered messages while acking what comes in
    (text: "ack <text>", bytes: echoed). Notes what it received and how it ended."""

    def __init__(self) -> None:
        self.received: list[str | bytes] = []
        self.disconnect: dict[str, Any] | None = None
        self.origin: str | None = None
        self.done = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            body = PAGE if scope["path"] == "/" else b"not here\n"
            await send({"type": "http.response.start", "status": 200 if body is PAGE else 404,
                        "headers": [(b"content-type", b"text/html; charset=utf-8")]})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "websocket":
            return
        try:
            await self._websocket(scope, receive, send)
        finally:
            self.done.set()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        self.origin = dict(scope["headers"]).get(b"origin", b"").decode()
        await send({"type": "websocket.accept"})

        async def push() -> None:
            for i in range(PUSHES):
                await send({"type": "websocket.send", "text": f"push {i}"})

        pusher = asyncio.ensure_future(push())  # pushes while the loop below receives
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    self.disconnect = message
                    return
                text = message.get("text")
                if text is not None:
                    self.received.append(text)
                    await send({"type": "websocket.send", "text": f"ack {text}"})
                else:
                    data = message.get("bytes") or b""
                    self.received.append(data)
                    await send({"type": "websocket.send", "bytes": data})
        finally:
            await pusher


class DevTools:
    """The Chrome DevTools protocol over the pipe Chromium reads on fd 3 and writes on fd 4."""

    def __init__(self, writer: int, reader: asyncio.StreamReader) -> None:
        self.writer = writer
        self.reader = reader
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, session: str | None = None, **params: Any
                   ) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self.writer, json.dumps(message).encode() + b"\0")
        while True:
            reply = await self.read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise AssertionError(f"DevTools {method} failed: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result
            self.events.append(reply)

    async def read(self) -> dict[str, Any]:
        try:
            raw = await self.reader.readuntil(b"\0")
        except asyncio.IncompleteReadError:
            raise AssertionError("Chromium closed its DevTools pipe (it exited)") from None
        message: dict[str, Any] = json.loads(raw[:-1])
        return message

    async def wait_event(self, method: str) -> dict[str, Any]:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = await self.read()
            if event.get("method") == method:
                return event
            self.events.append(event)


@contextlib.asynccontextmanager
async def headless_chromium() -> AsyncIterator[DevTools]:
    """Chromium with an empty page and a fresh profile, its DevTools pipe connected."""
    binary = chromium()
    profile = tempfile.mkdtemp(prefix="tl-chromium-")
    to_chromium, from_us = os.pipe()  # Chromium reads commands on fd 3
    to_us, from_chromium = os.pipe()  # and writes replies and events on fd 4
    to_chromium, from_chromium = _high(to_chromium), _high(from_chromium)
    proc = None
    transport = None
    try:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", f'exec "$@" 3<&{to_chromium} 4>&{from_chromium} '
                        f"{to_chromium}<&- {from_chromium}>&-",
            "chromium", binary, *FLAGS, f"--user-data-dir={profile}", "about:blank",
            pass_fds=(to_chromium, from_chromium), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        os.close(to_chromium)
        os.close(from_chromium)
        to_chromium = from_chromium = -1
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(to_us, "rb", 0))
        yield DevTools(from_us, reader)
    finally:
        for fd in (to_chromium, from_chromium, from_us):
            if fd >= 0:
                os.close(fd)  # closing its command pipe asks Chromium to exit
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if transport is not None:
            transport.close()
        else:
            os.close(to_us)
        shutil.rmtree(profile, ignore_errors=True)


def _high(fd: int) -> int:
    """``fd`` moved to 10 or above, so bash's ``3<&N 4>&M`` cannot clobber it
    (dash takes single-digit fds only, hence bash)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


async def open_page(devtools: DevTools, url: str) -> str:
    """Load ``url`` in Chromium's first page; returns the DevTools session of that page."""
    targets = await devtools.call("Target.getTargets")
    page = next(t for t in targets["targetInfos"] if t["type"] == "page")
    attached = await devtools.call("Target.attachToTarget", targetId=page["targetId"],
                                   flatten=True)
    session: str = attached["sessionId"]
    await devtools.call("Page.enable", session)
    await devtools.call("Page.navigate", session, url=url)
    await devtools.wait_event("Page.loadEventFired")
    return session


async def evaluate(devtools: DevTools, session: str, expression: str) -> Any:
    answer = await devtools.call("Runtime.evaluate", session, expression=expression,
                                 awaitPromise=True, returnByValue=True)
    if "exceptionDetails" in answer:
        details = answer["exceptionDetails"]
        raise AssertionError(f"the page failed: {details.get('exception', details)}")
    return answer["result"].get("value")


@pytest.mark.timeout(90)
async def test_chromium_talks_websocket_both_ways() -> None:
    app = PushAndAck()
    config = ServerConfig(access_log=False, lifespan="off")
    async with AppServer(app, "tcp://127.0.0.1:0", config=config) as server:
        origin = "http://" + server.urls[0].removeprefix("tcp://")
        async with headless_chromium() as devtools:
            session = await open_page(devtools, origin + "/")
            outcome = await asyncio.wait_for(evaluate(devtools, session, "window.finished"), 30)
            shown = await evaluate(devtools, session, "Array.from(document.querySelectorAll("
                                                      "'#got li'), li => li.textContent)")
        await asyncio.wait_for(app.done.wait(), 10)

    # what the page received: every push in order, every ack in order, the binary echo
    got = outcome["got"]
    assert sorted(got) == sorted([f"push {i}" for i in range(PUSHES)]
                                 + [f"ack page {i}" for i in range(SENDS)]
                                 + ["binary 0,1,2,255"]), got
    assert [m for m in got if m.startswith("push")] == [f"push {i}" for i in range(PUSHES)]
    assert [m for m in got if m.startswith("ack")] == [f"ack page {i}" for i in range(SENDS)]
    assert shown == got  # the page's own DOM says the same
    assert outcome["code"] == 1000 and outcome["reason"] == "page done" and outcome["clean"]

    # what the server received from the page, and how the page left
    assert app.received == [f"page {i}" for i in range(SENDS)] + [b"\x00\x01\x02\xff"]
    assert app.origin == origin  # a browser names the page's origin
    assert app.disconnect is not None and app.disconnect["code"] == 1000
