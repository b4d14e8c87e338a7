"""``DashboardApp``: the dashboard as one ASGI 3 app (routes, assets, WebSockets, lifespan).

Rules:
- Read-only: GET and HEAD only (anything else is 405), nothing on the page changes the
  machine. Building the map reads /proc; it is a GET like the rest.
- Same origin only: a WebSocket whose Origin is not this page's host is refused (403), so
  another site open in the browser cannot read the feeds. With ``check_host`` (every address
  is loopback TCP) a request naming another Host is refused (421) too: a DNS name rebound to
  127.0.0.1 does not make a page of that name same-origin with the dashboard.
- Every asset ships in the package (``assets/``, and mermaid from ``trace/vendor``); the
  Content-Security-Policy lets the page load nothing from elsewhere.
- Lifespan startup starts following the registry and the trace directory; shutdown stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..registry import Store, open_registry
from ..server.cycle import Receive, Scope, Send
from .bench import BenchFolder
from .feed import Feed
from .services import ServicesWatch
from .sockmap_view import BadFilter, map_json, parse_filter
from .traces import TraceFolder

log = logging.getLogger("trunkline.dashboard")

CSP = (b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       b"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
       b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
ASSETS = {"/": ("index.html", b"text/html; charset=utf-8"),
          "/assets/app.js": ("app.js", b"text/javascript; charset=utf-8"),
          "/assets/style.css": ("style.css", b"text/css; charset=utf-8")}
MERMAID = "/assets/mermaid.min.js"
FIRST_VIEW_WAIT = 3.0  # how long a request at start waits for the registry's first view


@dataclass(frozen=True)
class DashboardConfig:
    """What the dashboard shows: the registry (URL, a store, or None for the default),
    the trace directory, the benchmark directory (None: that panel says how to add one)."""

    registry: str | Store | None = None
    traces: Path | None = None
    bench: Path | None = None
    poll_interval: float = 0.25  # how often the trace directory is looked at
    check_host: bool = False  # refuse a Host that is not a loopback name (see the rules)


@cache
def _asset(name: str) -> bytes:
    return (resources.files(__package__) / "assets" / name).read_bytes()


def _mermaid() -> bytes:
    from ..trace.html import mermaid_js

    return mermaid_js().encode("utf-8")


def _loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class DashboardApp:
    def __init__(self, config: DashboardConfig | None = None) -> None:
        self.config = config or DashboardConfig()
        registry = self.config.registry
        store = registry if isinstance(registry, Store) else open_registry(registry)
        self.owns_store = not isinstance(registry, Store)
        self.services = ServicesWatch(store)
        self.traces = TraceFolder(self.config.traces) if self.config.traces else None
        self.traces_feed: Feed[dict[str, Any]] = Feed(self._trace_listing())
        self.bench = BenchFolder(self.config.bench) if self.config.bench else None
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifespan

    async def startup(self) -> None:
        await self.services.start()
        if self.traces is not None:
            self._tasks.append(asyncio.create_task(self._follow_traces(),
                                                   name="trunkline-dashboard-traces"))

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.services.stop(close_store=self.owns_store)

    async def _follow_traces(self) -> None:
        assert self.traces is not None
        while True:
            try:
                if self.traces.scan():
                    self.traces_feed.publish(self._trace_listing())
            except Exception:  # a surprise in one file must not end the live tail
                log.exception("reading traces in %s failed", self.traces.directory)
            await asyncio.sleep(self.config.poll_interval)

    def _trace_listing(self) -> dict[str, Any]:
        if self.traces is None:
            return {"directory": None, "error": None, "traces": [], "total": 0,
                    "skipped_files": []}
        return self.traces.listing()

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await self._http(scope, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _host_refused(self, scope: Scope) -> bool:
        if not self.config.check_host:
            return False
        host = dict(scope.get("headers", ())).get(b"host", b"").decode("latin-1")
        return not _loopback_host(host)

    async def _http(self, scope: Scope, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if self._host_refused(scope):
            return await _respond(send, 421, b"this dashboard answers to loopback names only "
                                  b"(127.0.0.1, [::1], localhost)\n", b"text/plain")
        if method not in ("GET", "HEAD"):
            return await _respond(send, 405, b"read-only: GET and HEAD only\n", b"text/plain",
                                  [(b"allow", b"GET, HEAD")])
        head = method == "HEAD"
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if path in ASSETS:
            name, content_type = ASSETS[path]
            return await _respond(send, 200, _asset(name), content_type, head=head)
        if path == MERMAID:
            return await _respond(send, 200, _mermaid(), b"text/javascript; charset=utf-8",
                                  [(b"cache-control", b"max-age=3600")], head=head)
        if path == "/api/services":
            await self._first_view()
            return await _json(send, 200, self.services.feed.value, head)
        if path == "/api/map":
            try:
                fields = parse_filter(query)
            except BadFilter as exc:
                return await _json(send, 400, {"error": str(exc)}, head)
            await self._first_view()  # just started: label with the registry's services
            data = await asyncio.to_thread(map_json, fields, self.services.records())
            return await _json(send, 200, data, head)
        if path == "/api/traces":
            return await _json(send, 200, self.traces_feed.value, head)
        if path.startswith("/api/traces/"):
            found = self.traces.detail(path.rsplit("/", 1)[1]) if self.traces else None
            if found is None:
                return await _json(send, 404, {"error": "no such trace (gone from the "
                                               "directory, or older than the newest kept)"},
                                   head)
            return await _json(send, 200, found, head)
        if path == "/api/bench":
            listing = self.bench.listing() if self.bench else {
                "directory": None, "results": [], "error": None}
            return await _json(send, 200, listing, head)
        if path.startswith("/api/bench/") and self.bench is not None:
            found_file = self.bench.file(path[len("/api/bench/"):])
            if found_file is not None:
                return await _respond(send, 200, *found_file, head=head)
        await _respond(send, 404, b"not found\n", b"text/plain", head=head)

    async def _first_view(self) -> None:
        """Just started: wait (a little) for the registry's first answer."""
        if self.services.view is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.services.feed.newer(0), FIRST_VIEW_WAIT)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        feeds = {"/ws/services": self.services.feed, "/ws/traces": self.traces_feed}
        feed = feeds.get(scope["path"])
        if feed is None or self._host_refused(scope) or not _same_origin(scope):
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        await _follow(feed, receive, send)


async def _follow(feed: Feed[dict[str, Any]], receive: Receive, send: Send) -> None:
    """Send the feed's value now and after every change until the page goes away."""
    incoming = asyncio.ensure_future(receive())
    version = -1
    try:
        while True:
            newer = asyncio.ensure_future(feed.newer(version))
            await asyncio.wait({incoming, newer}, return_when=asyncio.FIRST_COMPLETED)
            if incoming.done():
                newer.cancel()
                if incoming.result()["type"] == "websocket.disconnect":
                    return
                incoming = asyncio.ensure_future(receive())  # the page says nothing we use
                continue
            version, value = newer.result()
            await send({"type": "websocket.send", "text": json.dumps(value, default=str)})
    finally:
        incoming.cancel()


def _same_origin(scope: Scope) -> bool:
    headers: dict[bytes, bytes] = dict(scope.get("headers", ()))
    origin = headers.get(b"origin")
    if origin is None:
        return True  # not a browser: nothing to protect against
    host = headers.get(b"host", b"").decode("latin-1").lower()
    return bool(urlsplit(origin.decode("latin-1")).netloc.lower() == host)


async def _respond(send: Send, status: int, body: bytes, content_type: bytes,
                   extra: list[tuple[bytes, bytes]] | None = None, *, head: bool = False
                   ) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               (b"content-security-policy", CSP), (b"x-content-type-options", b"nosniff"),
               (b"referrer-policy", b"no-referrer"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _json(send: Send, status: int, value: Any, head: bool) -> None:
    body = json.dumps(value, default=str, ensure_ascii=False).encode("utf-8", "backslashreplace")
    await _respond(send, status, body, b"application/json", [(b"cache-control", b"no-store")],
                   head=head)
