"""The tour's HTTP leg: one demo users API served on four transports at once, called over each.

One ``AppServer`` serves the demo users API on TCP loopback, a Unix socket path, an abstract
Unix name and a FIFO (files in the tour's private temp dir). Over each transport one client
sends ``POST /users`` (creating ``tour-<transport>``), ``GET /users`` and ``GET /users/{id}``,
each with a tracer of its own, so the request line and the socket the call went over (a new
connection or the kept-alive one) come from the client's own events. Then ``requests``
keep-alive ``GET /users/{id}``, untraced, give p50/p99 per transport, side by side.

The app is wrapped (``WatchedApi``) to run a lifespan and to note each transport as the server
saw it (the ``trunkline.transport`` ASGI extension). At the end the client and the server
close, and the leg checks what it promised: no connection left, lifespan shutdown ran, the
socket files gone.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..address import Address, format_address
from ..errors import ProtocolError, TrunklineError
from ..trace.events import Step, Tracer
from .legs import Leg, TourContext, register_leg
from .model import Latency, LegResult

if TYPE_CHECKING:
    from ..client import Client, Response
    from ..server.cycle import ASGIApp, Receive, Scope, Send

__all__ = ["HttpCall", "HttpLeg", "HttpLegResult", "HttpTransport", "WatchedApi"]

#: name, title: the transports one server listens on, in the order shown
TRANSPORTS = [("tcp", "TCP loopback"), ("unix", "Unix socket (path)"),
              ("abstract", "Unix socket (abstract)"), ("fifo", "FIFO pair")]
BODY_CHARS = 200  # bodies are kept this short in results (the list grows with the tour)


@dataclass
class HttpCall:
    """One traced request: what went out, what came back, over which socket."""

    method: str
    target: str
    request_line: str  # as sent, e.g. "POST /users HTTP/1.1"
    status: int
    reason: str
    body: str  # the start of the body, at most BODY_CHARS characters
    body_bytes: int
    duration_ns: int  # the whole call as the caller waited for it (tracing on)
    connection: str  # "new" (this call connected) or "reused" (kept alive)
    local: str | None = None  # the client's end, as its CONNECT event named it
    peer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class HttpTransport:
    """The demo API over one transport."""

    name: str  # "tcp", "unix", "abstract", "fifo"
    title: str
    server_url: str  # the address the server listens on (as bound)
    url: str  # the client's base URL, e.g. http+unix://%2Ftmp%2F...%2Fapi.sock
    calls: list[HttpCall] = field(default_factory=list)
    server_view: dict[str, Any] | None = None  # trunkline.transport: kind, local, peer, creds
    connections: int = 0  # connections the client opened for every call on this transport
    latency: Latency | None = None  # the keep-alive GETs
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def client_local(self) -> str | None:
        return next((c.local for c in self.calls if c.connection == "new"), None)

    @property
    def client_peer(self) -> str | None:
        return next((c.peer for c in self.calls if c.connection == "new"), None)

    def to_dict(self, baseline: Latency | None = None) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "ok": self.ok,
            "server_url": self.server_url, "url": self.url,
            "client": {"local": self.client_local, "peer": self.client_peer},
            "server_view": self.server_view, "connections": self.connections,
            "calls": [c.to_dict() for c in self.calls],
            "latency": self.latency.to_dict() if self.latency else None,
            "p50_vs_tcp": ratio(self.latency, baseline), "error": self.error,
        }


def ratio(latency: Latency | None, baseline: Latency | None) -> float | None:
    """p50 over the baseline's p50 (TCP), rounded for show; None when either is missing."""
    if latency is None or baseline is None or not baseline.p50_ns:
        return None
    return round(latency.p50_ns / baseline.p50_ns, 3)


@dataclass
class HttpLegResult(LegResult):
    """The HTTP leg's result: ``transports`` side by side, plus how the server ended."""

    requests: int = 0  # timed keep-alive GETs per transport
    transports: list[HttpTransport] = field(default_factory=list)
    lifespan: dict[str, bool] = field(default_factory=dict)  # startup, shutdown: whether run

    @property
    def baseline(self) -> Latency | None:
        """TCP's latency: what the other transports are compared with."""
        return next((t.latency for t in self.transports if t.name == "tcp"), None)

    def to_dict(self) -> dict[str, Any]:
        base = self.baseline
        return {**super().to_dict(), "http": {
            "requests": self.requests, "lifespan": self.lifespan,
            "transports": [t.to_dict(base) for t in self.transports]}}


class WatchedApi:
    """An ASGI app around another: runs a lifespan of its own (so the tour can show that
    shutdown ran) and keeps, per listening address, the last ``trunkline.transport``
    extension its requests came with (how the server saw that connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.started = False
        self.stopped = False
        self.seen: dict[str, dict[str, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.started = True
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.stopped = True
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        ext = scope.get("extensions", {}).get("trunkline.transport")
        if ext is not None:
            self.seen[ext["address"]] = ext
        await self.app(scope, receive, send)


class HttpLeg(Leg):
    """The demo users API on every stream transport at once; see the module docstring."""

    name = "http"
    title = "HTTP API"
    kind = "http"

    def __init__(self, requests: int | None = None) -> None:
        self.requests = requests  # None: a quarter of the tour's rounds

    def new_result(self) -> HttpLegResult:
        return HttpLegResult(self.name, self.title, self.kind)

    async def run(self, ctx: TourContext, bound: list[Address]) -> LegResult:
        from ..apps.demo import demo_app
        from ..client import Client
        from ..server import AppServer, ServerConfig
        from ..transport import ListenOptions

        result = self.new_result()
        result.requests = requests = self.requests or max(1, ctx.rounds // 4)
        abstract = f"trunkline-tour-api-{os.getpid()}-{ctx.token}"
        ctx.abstract_names.append(abstract)
        unix_path, fifo_path = ctx.tmpdir / "api.sock", ctx.tmpdir / "api.fifo"
        app = WatchedApi(demo_app())
        config = ServerConfig(access_log=False, lifespan="on", shutdown_timeout=2.0,
                              listen=ListenOptions(allow_uids=frozenset({os.getuid()})))
        ctx.progress(f"{self.title}: starting the demo API on 4 addresses")
        server = AppServer(app, "tcp://127.0.0.1:0", f"unix://{unix_path}",
                           f"unix:@{abstract}", f"fifo://{fifo_path}", config=config)
        await server.start()
        client: Client | None = None
        try:
            result.server_url = ", ".join(server.urls)
            port = server.urls[0].rsplit(":", 1)[1]
            bases = [f"http://127.0.0.1:{port}",
                     f"http+unix://{quote(str(unix_path), safe='')}",
                     f"http+unix://{quote('@' + abstract, safe='')}",
                     f"http+fifo://{quote(str(fifo_path), safe='')}"]
            keys = [format_address(a) for a in server.addresses_requested]
            result.client_url = bases[0]
            client = Client(timeout=ctx.timeout)
            for (name, title), base, key, bound_url in zip(
                    TRANSPORTS, bases, keys, server.urls, strict=True):
                transport = HttpTransport(name, title, bound_url, base)
                result.transports.append(transport)
                ctx.progress(f"{self.title}: {title}: POST, GET, {requests} keep-alive GETs")
                try:
                    async with asyncio.timeout(ctx.timeout + requests * 0.01):
                        await self._visit(client, transport, requests)
                except (TrunklineError, OSError, TimeoutError) as exc:
                    transport.error = _describe(exc, ctx.timeout)
                transport.server_view = app.seen.get(key)
        finally:
            if client is not None:
                await client.aclose()
            await server.shutdown(2.0)
        self._check_closed(result, server.connections, app, [unix_path, fifo_path])
        failed = [f"{t.name}: {t.error}" for t in result.transports if t.error]
        if failed:
            result.error = "; ".join(failed)
        return result

    async def _visit(self, client: Client, transport: HttpTransport, requests: int) -> None:
        opened = _opened(client)
        who = f"tour-{transport.name}"
        post = await self._call(client, transport, "POST", "/users", json={"name": who})
        _expect(post, 201)
        user = post.json()
        if not isinstance(user, dict) or user.get("name") != who or "id" not in user:
            raise ProtocolError(f"POST /users answered {post.text!r}; expected the new user "
                                f"{who!r} with an id")
        listed = await self._call(client, transport, "GET", "/users")
        _expect(listed, 200)
        if who not in {u.get("name") for u in listed.json() if isinstance(u, dict)}:
            raise ProtocolError(f"GET /users does not list the user {who!r} just created")
        target = f"/users/{user['id']}"
        fetched = await self._call(client, transport, "GET", target)
        _expect(fetched, 200)
        if fetched.json() != user:
            raise ProtocolError(f"GET {target} answered {fetched.text!r}; expected {user}")
        transport.latency = await _keepalive_gets(client, transport.url + target, requests)
        transport.connections = _opened(client) - opened

    async def _call(self, client: Client, transport: HttpTransport, method: str, target: str,
                    **kwargs: Any) -> Response:
        """One traced request; the tracer's events say which socket carried it."""
        tracer = Tracer()
        start = time.perf_counter_ns()
        response = await client.request(method, transport.url + target, tracer=tracer,
                                        **kwargs)
        took = time.perf_counter_ns() - start
        connect = next((e for e in tracer.events
                        if e.step is Step.CONNECT and e.side == "client"), None)
        if connect is not None:
            how = "new"
            local, peer = connect.detail.get("local"), connect.detail.get("peer")
        else:  # kept alive: the connection an earlier call of this transport opened
            how = "reused"
            local, peer = transport.client_local, transport.client_peer
        line = response.request_head.split(b"\r\n", 1)[0].decode("latin-1")
        body = response.text
        transport.calls.append(HttpCall(
            method, target, line, response.status_code, response.reason_phrase,
            body.strip()[:BODY_CHARS], len(response.content), took, how,
            None if local is None else str(local), None if peer is None else str(peer)))
        return response

    @staticmethod
    def _check_closed(result: HttpLegResult, connections: int, app: WatchedApi,
                      files: list[Path]) -> None:
        result.lifespan = {"startup": app.started, "shutdown": app.stopped}
        left = [f.name for f in files if os.path.lexists(f)]
        problems = []
        if connections:
            problems.append(f"{connections} connections still open after shutdown")
        if not app.stopped:
            problems.append("lifespan shutdown did not run")
        if left:
            problems.append(f"{', '.join(left)} still there after shutdown")
        if problems:
            result.error = "; ".join(problems)
            return
        result.notes.append("server closed: no connection open, lifespan shutdown ran, "
                            f"{', '.join(f.name for f in files)} removed")


async def _keepalive_gets(client: Client, url: str, requests: int) -> Latency | None:
    samples: list[int] = []
    clock = time.perf_counter_ns
    response = None
    for _ in range(requests):
        start = clock()
        response = await client.get(url)
        samples.append(clock() - start)
        if response.status_code != 200:
            _expect(response, 200)
    return Latency.from_samples(samples, len(response.content) if response else 0)


def _opened(client: Client) -> int:
    return sum(pool.opened for pool in client.pools.values())


def _expect(response: Response, status: int) -> None:
    if response.status_code != status:
        raise ProtocolError(f"{response.method} {response.url} answered "
                            f"{response.status_code} {response.reason_phrase} "
                            f"({response.text[:100]!r}); expected {status}")


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout} s"
    return str(exc) or type(exc).__name__


register_leg(HttpLeg)
