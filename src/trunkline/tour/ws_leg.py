"""The tour's WebSocket leg: full duplex over TCP loopback and a Unix socket.

One ``AppServer`` serves a small ASGI app (``DuplexApp``) on TCP loopback and on a Unix socket
path (in the tour's private temp dir). Over each transport the client opens a WebSocket and
both sides talk at once: the server's handler pushes ``messages`` numbered ticks
(``tick 0``, ``tick 1``...) from a task of its own while its receive loop acks every message
the client sends (``ack msg 0``...); the client sends ``messages`` messages (``msg 0``...)
while a reader task takes the ticks and the acks. Both sides yield to the event loop after
each send, so their sends and receipts interleave. Every send and receipt is stamped on one
clock (both ends live in this process), which gives the evidence of full duplex:

- the timeline of the first ``TIMELINE`` events, both sides merged in time order;
- how many ticks the client had received before its own last send, and how many client
  messages the server had received before its last push (both above 0: the two directions
  were in flight at the same time).

Then ``pings`` pings (``ws.ping()``: the round trip of a ping and its pong) and ``rounds``
sequential message round trips (send ``rt N``, wait for its ack) give p50/p99. The client
closes with 1000; the leg checks the server saw that close, that no connection is left and
that the socket file is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..address import Address
from ..errors import ProtocolError, TrunklineError
from .legs import Leg, TourContext, register_leg
from .model import Latency, LegResult

if TYPE_CHECKING:
    from ..aio.websocket import WebSocket
    from ..server.cycle import Receive, Scope, Send

__all__ = ["DuplexApp", "WsEvent", "WsLeg", "WsLegResult", "WsTransport"]

#: name, title: the transports one server listens on, in the order shown
TRANSPORTS = [("tcp", "TCP loopback"), ("unix", "Unix socket (path)")]
TIMELINE = 16  # events kept per transport, from the start of the duplex phase


@dataclass(frozen=True)
class WsEvent:
    """One send or receipt in the duplex phase."""

    at_ns: int  # since the first event of this transport's duplex phase
    side: str  # "client" or "server"
    what: str  # e.g. "sent msg 0", "pushed tick 3", "got ack msg 0"

    def to_dict(self) -> dict[str, Any]:
        return {"at_ns": self.at_ns, "side": self.side, "what": self.what}


@dataclass
class Duplex:
    """Counts and stamps of one connection's duplex phase, written by both ends."""

    messages: int
    start_ns: int = 0
    events: list[WsEvent] = field(default_factory=list)
    client_sent: int = 0
    client_ticks: int = 0  # ticks the client received
    client_acks: int = 0  # acks of its msgs the client received
    server_pushed: int = 0
    server_got: int = 0  # client msgs the server received
    client_ticks_before_last_send: int | None = None
    server_got_before_last_push: int | None = None
    close: dict[str, Any] | None = None  # the server's websocket.disconnect
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # the handler returned
    view: dict[str, Any] | None = None  # the server's trunkline.transport extension

    def note(self, side: str, what: str) -> None:
        if len(self.events) < TIMELINE:
            now = time.monotonic_ns()
            if not self.events:
                self.start_ns = now
            self.events.append(WsEvent(now - self.start_ns, side, what))


@dataclass
class WsTransport:
    """The duplex WebSocket over one transport."""

    name: str  # "tcp", "unix"
    title: str
    server_url: str  # the address the server listens on (as bound)
    url: str  # what the client dialled, e.g. ws+unix://%2Ftmp%2F...%2Fws.sock/unix
    client_local: str | None = None
    client_peer: str | None = None
    server_view: dict[str, Any] | None = None  # trunkline.transport: kind, local, peer, creds
    extensions: list[str] = field(default_factory=list)
    messages: int = 0  # per direction in the duplex phase
    client_sent: int = 0
    server_got: int = 0
    server_pushed: int = 0
    client_ticks: int = 0
    client_acks: int = 0
    client_ticks_before_last_send: int | None = None
    server_got_before_last_push: int | None = None
    timeline: list[WsEvent] = field(default_factory=list)
    ping: Latency | None = None
    latency: Latency | None = None  # sequential message round trips
    close_code: int | None = None  # as the server saw the client's close
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def full_duplex(self) -> bool:
        """Both directions carried messages while the other was still sending."""
        return bool(self.client_ticks_before_last_send) and \
            bool(self.server_got_before_last_push)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "ok": self.ok,
            "server_url": self.server_url, "url": self.url,
            "client": {"local": self.client_local, "peer": self.client_peer},
            "server_view": self.server_view, "extensions": self.extensions,
            "messages": self.messages,
            "client_to_server": {"sent": self.client_sent, "received": self.server_got,
                                 "acks_back": self.client_acks},
            "server_to_client": {"pushed": self.server_pushed, "received": self.client_ticks},
            "full_duplex": {
                "ok": self.full_duplex,
                "client_ticks_before_last_send": self.client_ticks_before_last_send,
                "server_msgs_before_last_push": self.server_got_before_last_push},
            "timeline": [e.to_dict() for e in self.timeline],
            "ping": self.ping.to_dict() if self.ping else None,
            "latency": self.latency.to_dict() if self.latency else None,
            "close_code": self.close_code, "error": self.error,
        }


@dataclass
class WsLegResult(LegResult):
    """The WebSocket leg's result: ``transports`` side by side."""

    messages: int = 0
    rounds: int = 0
    pings: int = 0
    transports: list[WsTransport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "websocket": {
            "messages": self.messages, "rounds": self.rounds, "pings": self.pings,
            "transports": [t.to_dict() for t in self.transports]}}


class DuplexApp:
    """ASGI: a WebSocket at ``/<transport>`` pushes ticks while acking what comes in. The leg
    registers a ``Duplex`` per path before connecting; both ends write into it."""

    def __init__(self) -> None:
        self.sessions: dict[str, Duplex] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        duplex = self.sessions.get(scope.get("path", ""))
        if scope["type"] != "websocket" or duplex is None:
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b""})
            return
        if (await receive())["type"] != "websocket.connect":
            return
        duplex.view = scope.get("extensions", {}).get("trunkline.transport")
        await send({"type": "websocket.accept"})

        async def push() -> None:
            for i in range(duplex.messages):
                await send({"type": "websocket.send", "text": f"tick {i}"})
                duplex.server_pushed += 1
                duplex.note("server", f"pushed tick {i}")
                await asyncio.sleep(0)  # let the receive loop run: the two interleave
            duplex.server_got_before_last_push = duplex.server_got

        pusher = asyncio.ensure_future(push())
        try:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    duplex.close = dict(message)
                    break
                text = message.get("text") or ""
                if text.startswith("msg "):
                    duplex.server_got += 1
                    duplex.note("server", f"got {text}")
                await send({"type": "websocket.send", "text": f"ack {text}"})
        finally:
            if not pusher.done():
                pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await pusher
            duplex.closed.set()


class WsLeg(Leg):
    """A duplex WebSocket over TCP and a Unix socket; see the module docstring."""

    name = "ws"
    title = "WebSocket, full duplex"
    kind = "websocket"

    def __init__(self, messages: int | None = None, rounds: int | None = None,
                 pings: int | None = None) -> None:
        self.messages = messages  # None: from the tour's rounds
        self.rounds = rounds
        self.pings = pings

    def new_result(self) -> WsLegResult:
        return WsLegResult(self.name, self.title, self.kind)

    async def run(self, ctx: TourContext, bound: list[Address]) -> LegResult:
        from ..server import AppServer, ServerConfig
        from ..transport import ListenOptions

        result = self.new_result()
        result.messages = messages = self.messages or max(10, min(200, ctx.rounds // 10))
        result.rounds = rounds = self.rounds or max(1, ctx.rounds // 4)
        result.pings = pings = self.pings or max(1, min(20, ctx.rounds))
        sock = ctx.tmpdir / "ws.sock"
        app = DuplexApp()
        config = ServerConfig(access_log=False, lifespan="off", shutdown_timeout=2.0,
                              listen=ListenOptions(allow_uids=frozenset({os.getuid()})))
        ctx.progress(f"{self.title}: starting a WebSocket server on TCP and a Unix socket")
        server = AppServer(app, "tcp://127.0.0.1:0", f"unix://{sock}", config=config)
        await server.start()
        try:
            result.server_url = ", ".join(server.urls)
            port = server.urls[0].rsplit(":", 1)[1]
            urls = [f"ws://127.0.0.1:{port}/tcp",
                    f"ws+unix://{quote(str(sock), safe='')}/unix"]
            result.client_url = urls[0]
            for (name, title), url, bound_url in zip(TRANSPORTS, urls, server.urls,
                                                     strict=True):
                transport = WsTransport(name, title, bound_url, url, messages=messages)
                result.transports.append(transport)
                duplex = app.sessions[f"/{name}"] = Duplex(messages)
                ctx.progress(f"{self.title}: {title}: {messages} messages each way at once, "
                             f"{pings} pings, {rounds} round trips")
                try:
                    async with asyncio.timeout(ctx.timeout + rounds * 0.01):
                        await _visit(transport, duplex, rounds, pings)
                except (TrunklineError, OSError, TimeoutError) as exc:
                    transport.error = _describe(exc, ctx.timeout)
        finally:
            await server.shutdown(2.0)
        _check_closed(result, server.connections, sock)
        failed = [f"{t.name}: {t.error}" for t in result.transports if t.error]
        if failed:
            result.error = "; ".join(failed)
        return result


async def _visit(transport: WsTransport, duplex: Duplex, rounds: int, pings: int) -> None:
    from ..client.websocket import websocket

    async with websocket(transport.url) as ws:
        transport.client_local = None if ws.local is None else str(ws.local)
        transport.client_peer = None if ws.peer is None else str(ws.peer)
        transport.extensions = ws.extensions
        await _duplex(ws, duplex)
        for name in ("client_sent", "server_got", "server_pushed", "client_ticks",
                     "client_acks", "client_ticks_before_last_send",
                     "server_got_before_last_push"):
            setattr(transport, name, getattr(duplex, name))
        transport.timeline = list(duplex.events)
        transport.server_view = duplex.view
        samples = [await ws.ping() for _ in range(pings)]
        transport.ping = Latency.from_samples([round(s * 1e9) for s in samples], 4)
        transport.latency = await _round_trips(ws, rounds)
    transport.close_code = ws.close_code
    await duplex.closed.wait()  # the server's handler saw the close and returned
    if duplex.close is None or duplex.close.get("code") != 1000:
        raise ProtocolError(f"the server did not see a clean close (it saw {duplex.close})")
    if not transport.full_duplex:
        raise ProtocolError("no evidence of full duplex: one side finished sending before "
                            "the other's messages arrived")


async def _duplex(ws: WebSocket, duplex: Duplex) -> None:
    """Send ``messages`` msgs while a reader takes ticks and acks; both counted and stamped."""
    n = duplex.messages

    async def reader() -> None:
        while duplex.client_ticks < n or duplex.client_acks < n:
            message = await ws.recv()
            if not isinstance(message, str):
                raise ProtocolError(f"unexpected binary message {message!r}")
            if message.startswith("tick "):
                duplex.client_ticks += 1
            elif message.startswith("ack msg "):
                duplex.client_acks += 1
            else:
                raise ProtocolError(f"unexpected message {message!r}")
            duplex.note("client", f"got {message}")

    reading = asyncio.ensure_future(reader())
    try:
        for i in range(n):
            await ws.send(f"msg {i}")
            duplex.client_sent += 1
            duplex.note("client", f"sent msg {i}")
            await asyncio.sleep(0)  # let the reader run: sends and receipts interleave
            if reading.done():
                break  # it failed: its error is raised below
        duplex.client_ticks_before_last_send = duplex.client_ticks
        await reading
    finally:
        if not reading.done():
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading


async def _round_trips(ws: WebSocket, rounds: int) -> Latency | None:
    samples: list[int] = []
    clock = time.perf_counter_ns
    for i in range(rounds):
        text = f"rt {i}"
        start = clock()
        await ws.send(text)
        reply = await ws.recv()
        samples.append(clock() - start)
        if reply != f"ack {text}":
            raise ProtocolError(f"expected 'ack {text}', got {reply!r}")
    return Latency.from_samples(samples, len(f"rt {rounds - 1}"))


def _check_closed(result: WsLegResult, connections: int, sock: Path) -> None:
    problems = []
    if connections:
        problems.append(f"{connections} connections still open after shutdown")
    if os.path.lexists(sock):
        problems.append(f"{sock.name} still there after shutdown")
    if problems:
        result.error = "; ".join(problems)
        return
    result.notes.append(f"server closed: no connection open, {sock.name} removed")


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout} s"
    return str(exc) or type(exc).__name__


register_leg(WsLeg)
