"""``HttpServerConnection``: the asyncio protocol that joins the HTTP/1.1 core to a transport and
runs one ASGI cycle per request.

Rules:
- Requests are answered in the order they arrived. Pipelined requests are parsed ahead and
  wait (bounded by ``max_pipelined``); the next one starts when a response is complete, even
  if the app keeps running (background work after the response).
- Backpressure both ways: request body held for the app is bounded by ``body_buffer``
  (reading pauses above it); ``send`` waits while the transport's write buffer is full,
  the last body message too. While writing is paused (a client that pipelines and never
  reads) reading stays paused and no next request starts: what we hold for a client is
  its unsent answers up to the high-water mark, plus the requests parsed ahead (at most
  ``max_pipelined`` after one read; the core holds the rest of a read as bytes).
- Timeouts use one lazy timer per connection: moving a deadline is a float store; the timer
  notices when it fires. The header deadline starts at a head's first byte and is never
  pushed back by more bytes (slowloris); the idle deadline starts when a response ends.
- A ``Reject`` from the core is answered with its status and the connection is closed.
- ``Upgrade: websocket`` requests go to ``websocket_handler`` when one is set (it takes
  the transport over); otherwise the app answers them as plain HTTP and the connection
  closes after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..address import (
    FifoIdentity,
    Identity,
    PeerCredentials,
    SocketIdentity,
    UnixIdentity,
)
from ..host import ConnectionRegistry
from ..protocol.http_server import HttpServerProtocol
from ..protocol.http_server_events import END_OF_MESSAGE, HttpLimits, Reject, RequestHead, Upgraded
from ..protocol.http_server_response import error_response
from ..trace.events import Step, TraceEvent, Tracer
from ..transport.base import KIND, local_identity, peer_credentials, peer_identity
from . import accesslog
from .clock import BUSY, HEADER, IDLE, ConnectionClock
from .config import ServerConfig
from .cycle import ASGIApp, Cycle, Scope
from .forwarded import TrustedProxies, apply_forwarded

log = logging.getLogger("trunkline.server")

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}


@dataclass
class WebSocketHandoff:
    """What a WebSocket server gets for an ``Upgrade: websocket`` request. The transport's
    reading is paused: call ``transport.set_protocol(yours)`` then ``resume_reading()``.
    ``data`` holds the bytes that arrived after the head; ``scope`` is the HTTP scope of
    the request (change ``type`` and ``scheme`` for the websocket scope)."""

    head: RequestHead
    scope: Scope
    transport: asyncio.Transport
    data: bytes
    app: ASGIApp
    state: ServerState


WebSocketHandler = Callable[[WebSocketHandoff], None]


@dataclass
class ServerState:
    """What every connection of one server shares."""

    app: ASGIApp
    config: ServerConfig
    tracer: Tracer | None = None
    websocket_handler: WebSocketHandler | None = None
    app_state: dict[str, Any] = field(default_factory=dict)  # lifespan state, copied per request
    # The host's registry: live connections, and app calls running (``tasks``) so a
    # graceful stop waits for background work after a response too.
    connections: ConnectionRegistry = field(default_factory=ConnectionRegistry)
    limits: HttpLimits = field(init=False)
    server_header: bytes | None = field(init=False)
    proxies: TrustedProxies | None = field(init=False)  # set when proxy headers are on

    def __post_init__(self) -> None:
        self.limits = self.config.http_limits()
        self.proxies = (TrustedProxies(self.config.forwarded_allow_ips)
                        if self.config.proxy_headers else None)
        header = self.config.server_header
        self.server_header = header.encode("latin-1") if header else None


@dataclass(frozen=True)
class ListenContext:
    """What a listener knows about the connections it accepts."""

    kind: str  # "tcp", "tls", "unix", "fifo"; for fd:// the kind of the inherited socket
    url: str  # the listening address, as in the grammar
    via: str | None = None  # "fd" for inherited sockets


def _scope_addr(identity: Identity | None) -> tuple[str, int | None] | None:
    if isinstance(identity, SocketIdentity):
        return (identity.ip, identity.port)
    if isinstance(identity, UnixIdentity):
        if not identity.path:
            return None
        return ("@" + identity.path if identity.abstract else identity.path, None)
    if isinstance(identity, FifoIdentity):
        return (identity.read_path, None)
    return None


def _describe(identity: Identity | None) -> str | None:
    if identity is None:
        return None
    if isinstance(identity, SocketIdentity):
        host = f"[{identity.ip}]" if ":" in identity.ip else identity.ip
        return f"{host}:{identity.port}"
    if isinstance(identity, UnixIdentity):
        if not identity.path:
            return None
        return "@" + identity.path if identity.abstract else identity.path
    return str(identity)


def _credentials(creds: PeerCredentials | None) -> dict[str, int | None] | None:
    if creds is None:
        return None
    return {"pid": creds.pid, "uid": creds.uid, "gid": creds.gid}


class HttpServerConnection(ConnectionClock, asyncio.Protocol):
    """One accepted connection speaking HTTP/1.1 to an ASGI app."""

    def __init__(self, state: ServerState, context: ListenContext) -> None:
        self.state = state
        self.context = context
        self.loop = asyncio.get_running_loop()
        self.app: Any = state.app  # Any: the return value is checked (must be None)
        self.tracer = state.tracer
        self.core = HttpServerProtocol(state.limits, state.server_header,
                                       state.config.max_pipelined)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.conn_id = 0
        self._head_ns = 0
        self.write_paused = False
        self._config = state.config
        self._queue: deque[Cycle] = deque()
        self._current: Cycle | None = None
        self._stalled: Cycle | None = None  # done while writing was paused: resume_writing
        self._parsing: Cycle | None = None
        self._buffered = 0
        self._read_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closing = False
        self.lost = False
        self._detached = False
        self._draining = False
        self._peer_eof = False
        self._rejected: Reject | None = None
        self._phase = HEADER
        self._deadline: float | None = None
        self._send_left = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._scheme = "http"
        self._server: tuple[str, int | None] | None = None
        self._client: tuple[str, int | None] | None = None
        self._max_pipelined = self._config.max_pipelined
        self.ext: dict[str, Any] = {}
        self._root_path = self._config.root_path
        self._proxies = state.proxies
        self._app_state = state.app_state
        self._access = accesslog.logger
        self._log_access = self._config.access_log
        self._keepalive = self._config.keepalive_timeout
        self._app_tasks = state.connections.tasks

    # ---------------------------------------------------------------- connection events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        state = self.state
        connections = state.connections
        connections.add(self)
        tracer = self.tracer
        if tracer is not None:
            self.conn_id = tracer.new_connection()
        self._describe_transport()
        if tracer is not None:
            tracer.record(Step.ACCEPT, "server", time.monotonic_ns(), self.conn_id,
                          transport=self.ext["kind"], local=self.ext["local"],
                          peer=self.ext["peer"])
        cap = self._config.max_connections
        if connections.draining or (cap is not None and len(connections) > cap):
            # Over capacity: answer the first request with 503 and close.
            self._rejected = Reject(503, "the server is at its connection limit"
                                    if not connections.draining else
                                    "the server is shutting down")
        # Even a refused connection gets the header deadline: a silent one is then closed.
        self._set_deadline(HEADER, self._config.header_timeout)

    def _describe_transport(self) -> None:
        transport = self.transport
        context = self.context
        try:
            local = local_identity(transport)
        except (OSError, ValueError, AttributeError):
            local = None
        peer = peer_identity(transport)
        kind = context.kind
        if context.via == "fd" or transport.get_extra_info(KIND) is not None:
            kind = transport.get_extra_info(KIND) or (
                "unix" if isinstance(local, UnixIdentity) else kind)
        creds = None
        if isinstance(local, UnixIdentity | FifoIdentity):
            try:
                creds = peer_credentials(transport)
            except OSError:
                creds = None
        server = _scope_addr(local)
        if isinstance(local, FifoIdentity) and context.url.startswith("fifo:"):
            server = (context.url.split(":", 1)[1].removeprefix("//"), None)
        self.ext = {"kind": kind, "address": context.url, "local": _describe(local),
                    "peer": _describe(peer), "credentials": _credentials(creds)}
        if context.via:
            self.ext["via"] = context.via
        self._scheme = "https" if kind == "tls" else "http"
        self._server = server
        self._client = _scope_addr(peer) if isinstance(peer, SocketIdentity) else None

    def data_received(self, data: bytes) -> None:
        if self._closing or self._detached:
            return
        if self._rejected is not None:
            if self._current is None and not self._queue:
                self._send_error(self._rejected)
            return
        # The header deadline starts (below, in _update_deadline) only if these bytes leave
        # a head unfinished: a whole head in one read costs no clock reading here.
        if self.tracer is not None and not self.core.has_partial_head:
            self._head_ns = time.monotonic_ns()  # a head starts in this read
        events = self.core.receive_data(data)
        for event in events:
            kind = type(event)
            if kind is RequestHead:
                self._on_head(event)  # type: ignore[arg-type]
            elif kind is bytes:
                self._on_body(event)  # type: ignore[arg-type]
            elif event is END_OF_MESSAGE:
                cycle = self._parsing
                if cycle is not None:
                    cycle.complete = True
                    cycle.wake()
                    self._parsing = None
            elif kind is Upgraded:
                self._on_upgraded(event)  # type: ignore[arg-type]
            else:
                self._on_reject(event)  # type: ignore[arg-type]
                break  # nothing follows a reject; requests before it are still answered
        if self._closing:
            return
        if self._current is None and self._queue and not self.write_paused:
            self._start_next()
        if self.core.held:
            self._pause_reading()  # _more() goes on with them when the queue has room
        if self._current is not None and self._parsing is None and not self.write_paused:
            self._phase = BUSY  # no deadline while the app works (the timer finds None)
            self._deadline = None
        else:
            self._update_deadline()  # a body to wait for, the next head, idle...

    def eof_received(self) -> bool | None:
        # The client half-closed: finish what is in flight, then close. (TLS cannot
        # half-close; its transport closes itself whatever we return.)
        self._peer_eof = True
        if self._current is None and not self._queue:
            self.close()
        return None if self._scheme == "https" else True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.state.connections.forget(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for cycle in (self._current, *self._queue):
            if cycle is not None:
                cycle.disconnected = True
                cycle.wake()
        parsing = self._parsing
        if parsing is not None:
            parsing.disconnected = True
            parsing.wake()
        self._queue.clear()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        if self.tracer is not None and not self._detached:
            # "by", as the client and the stream server say it; the client's EOF came first
            by = "client" if self._peer_eof or not self._closing else "server"
            detail: dict[str, Any] = {"by": by}
            if exc is not None:
                detail["error"] = str(exc)
            self.tracer.record(Step.CLOSE, "server", time.monotonic_ns(), self.conn_id,
                               **detail)

    def pause_writing(self) -> None:
        # The client does not read its answers: read no more questions from it.
        self.write_paused = True
        if not self._detached:
            self._pause_reading()
            self._start_send_clock()

    def resume_writing(self) -> None:
        self.write_paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._closing or self._detached or self.lost:
            return
        self._stop_send_clock()
        stalled = self._stalled
        if stalled is not None:
            self._stalled = None
            self._next_after(stalled)
        elif self._current is None and self._queue:
            self._start_next()
        else:
            self._more(self._config.body_buffer // 2)
        if not self._closing and not self.write_paused:
            self._update_deadline()

    async def drain(self) -> None:
        if self.write_paused and not self.lost:
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    # ---------------------------------------------------------------- parsing events

    def _on_head(self, head: RequestHead) -> None:
        root = self._root_path
        scope = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": head.http_version,
            "server": self._server,
            "client": self._client,
            "scheme": self._scheme,
            "method": head.method,
            "root_path": root,
            "path": root + head.path if root else head.path,
            # as uvicorn: root_path prefixes path and raw_path alike
            "raw_path": root.encode("latin-1") + head.raw_path if root else head.raw_path,
            "query_string": head.query,
            "headers": head.headers,
            "state": self._app_state.copy() if self._app_state else {},
            "extensions": {"trunkline.transport": self.ext},
        }
        if self._proxies is not None:
            apply_forwarded(scope, self._proxies)
        cycle = Cycle(self, head, scope)
        self._parsing = cycle
        self._queue.append(cycle)
        if self.tracer is not None:
            cycle.start_ns = self._head_ns
            self._trace(Step.REQUEST_HEADERS, cycle, cycle.start_ns, method=head.method,
                        target=head.target.decode("latin-1"), version=head.http_version)
        if len(self._queue) > self._max_pipelined:
            self._pause_reading()

    def _on_body(self, data: bytes) -> None:
        cycle = self._parsing
        if cycle is None or cycle.done or cycle.disconnected:
            return  # the response is complete: the rest of the body is read and dropped
        cycle.body.append(data)
        size = len(data)
        cycle.buffered += size
        self._buffered += size
        if self._buffered > self._config.body_buffer:
            self._pause_reading()
        cycle.wake()

    def _on_upgraded(self, event: Upgraded) -> None:
        # What follows belongs to another protocol: stop reading; keep it for the handoff.
        self._pause_reading()
        cycle = self._queue[-1] if self._queue else self._current
        if cycle is not None and cycle.head.upgrade is not None:
            cycle.rest += event.data

    def _on_reject(self, reject: Reject) -> None:
        self._rejected = reject
        self._pause_reading()
        victim = self._parsing
        self._parsing = None
        if victim is not None and not victim.complete:
            victim.disconnected = True
            victim.wake()
            if victim is self._current:
                if victim.on_wire:
                    self.close()
                else:
                    self._send_error(reject)
                return
            self._queue.remove(victim)
        if self._current is None and not self._queue:
            self._send_error(reject)

    def _send_error(self, reject: Reject) -> None:
        self.write(error_response(reject.status, reject.reason, self.state.server_header))
        self.close()
        if self._log_access and accesslog.logger.isEnabledFor(logging.INFO):
            accesslog.log_rejected(self.ext, reject.status, reject.reason)

    # ---------------------------------------------------------------- cycles

    def _start_next(self) -> None:
        cycle = self._queue.popleft()
        self._current = cycle
        handler = self.state.websocket_handler
        if cycle.head.upgrade == b"websocket" and handler is not None:
            self._hand_off(cycle, handler)
            return
        # A graceful stop waits for (or cancels) the app calls in this set. _run takes its
        # own task out as it ends: a done callback would cost a loop pass per request.
        cycle.task = task = self.loop.create_task(self._run(cycle))
        self._app_tasks.add(task)

    async def _run(self, cycle: Cycle) -> None:
        tracer = self.tracer
        if tracer is not None:
            cycle.app_ns = time.monotonic_ns()
        try:
            result: object = await self.app(cycle.scope, cycle.receive, cycle.send)
        except BaseException as exc:  # noqa: BLE001 - the app's failure is logged, then answered
            if not isinstance(exc, asyncio.CancelledError | Exception):
                raise
            if isinstance(exc, asyncio.CancelledError):
                log.warning("ASGI app cancelled (shutdown deadline) during %s %s",
                            cycle.head.method, cycle.head.target.decode("latin-1"))
            elif not cycle.disconnected:
                log.error("Exception in ASGI application (%s %s)", cycle.head.method,
                          cycle.head.target.decode("latin-1"), exc_info=exc)
            self._app_failed(cycle)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            if result is not None:
                log.error("ASGI app returned %r instead of None", result)
            if not cycle.done and not cycle.disconnected:
                log.error("ASGI app returned without %s the response (%s %s)",
                          "completing" if cycle.started else "starting", cycle.head.method,
                          cycle.head.target.decode("latin-1"))
                self._app_failed(cycle)
        finally:
            self._app_tasks.discard(cycle.task)
            if tracer is not None:
                self._trace(Step.APP_CALL, cycle, cycle.app_ns, status=cycle.status)

    def _app_failed(self, cycle: Cycle) -> None:
        if cycle.done or cycle.disconnected:
            return
        if cycle.on_wire:  # part of a response went out: the client can only see a close
            cycle.done = True
            self.close()
            return
        body = b"Internal Server Error"
        cycle.started = True
        cycle.status = 500
        self.core.start_response(cycle.head, 500, [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"21")])
        self.write(self.core.send_body(body, False))
        cycle.on_wire = True
        cycle.body_bytes = len(body)
        cycle.done = True
        cycle.wake()
        self.response_done(cycle)

    def response_done(self, cycle: Cycle) -> None:
        """The response is complete: log it, then the next request or close."""
        if self._log_access and self._access.isEnabledFor(logging.INFO):
            accesslog.log_request(self.ext, cycle)
        if self.tracer is not None:
            self._trace(Step.RESPONSE_DONE, cycle, cycle.wire_ns or cycle.start_ns,
                        status=cycle.status,
                        body_bytes=cycle.body_bytes)
        if cycle.buffered:
            self.consumed(cycle.buffered)
            cycle.buffered = 0
            cycle.body = []
        if cycle is self._current:
            self._current = None
        if self._closing:
            return
        if self.write_paused:  # the client is not reading: go on when it does
            self._stalled = cycle
            return
        self._next_after(cycle)

    def _next_after(self, cycle: Cycle) -> None:
        """After a response: the next request, more reading, or the close."""
        if not self.core.keep_alive or self._draining or self._peer_eof or \
                self._rejected is not None or (not cycle.complete and cycle.head.expect_continue):
            self._after_last_response(cycle)
            return
        if self._queue:
            self._start_next()
            return
        self._more(self._config.body_buffer)
        if self._current is not None or self._queue or self._closing:
            return  # the held bytes had a request: it runs
        if self._phase != IDLE and not self.core.has_partial_head:
            self._set_deadline(IDLE, self._keepalive)
        else:
            self._update_deadline()

    def _after_last_response(self, cycle: Cycle) -> None:
        """The slow path of ``response_done``: closing, or answering a reject."""
        unread = not cycle.complete and cycle.head.expect_continue and cycle.head.has_body
        if not self.core.keep_alive or self._draining or unread or (
                self._peer_eof and not self._queue):
            self.close()
        elif self._rejected is not None and not self._queue:
            self._send_error(self._rejected)
        elif self._queue:
            self._start_next()
        else:
            self._update_deadline()

    def consumed(self, size: int) -> None:
        """The app took ``size`` buffered body bytes: maybe read again."""
        self._buffered -= size
        if self._read_paused:
            self._more(self._config.body_buffer // 2)

    def _more(self, body_room: int) -> None:
        """Take more requests when nothing holds them back (writing paused, too many
        parsed ahead, body held over ``body_room``, a reject, an upgrade): first the bytes
        the core held back, then the transport."""
        if self.core.held and self._may_read(body_room):
            self.data_received(b"")
        if self._read_paused and not self.core.held and self._may_read(body_room):
            self._resume_reading()

    def _may_read(self, body_room: int) -> bool:
        return not (self.write_paused or self._closing or self._detached or self.lost or
                    self._rejected is not None or self.core.switched or
                    self._buffered > body_room or len(self._queue) > self._max_pipelined)

    def _hand_off(self, cycle: Cycle, handler: Callable[[WebSocketHandoff], None]) -> None:
        self._detached = True
        self.state.connections.forget(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pause_reading()
        handler(WebSocketHandoff(cycle.head, cycle.scope, self.transport, cycle.rest,
                                 self.app, self.state))

    # ---------------------------------------------------------------- helpers

    def write(self, data: bytes) -> None:
        if not self.lost:
            self.transport.write(data)

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.transport.close()
            if not self.lost and self.transport.get_write_buffer_size():
                self._start_send_clock()  # the rest must still go, or the close never ends

    def shutdown(self) -> None:
        """Graceful shutdown: close now if idle, else after the response in flight."""
        self._draining = True
        self.core.close_after_response()
        if self._current is None and not self._queue:
            self.close()

    def abort(self) -> None:
        self._closing = True
        self.transport.abort()

    def _pause_reading(self) -> None:
        if not self._read_paused and not self.lost:
            self._read_paused = True
            self.transport.pause_reading()
            self._reading_paused()

    def _resume_reading(self) -> None:
        if self._read_paused and not self.lost and not self._closing:
            self._read_paused = False
            self.transport.resume_reading()
            if self._parsing is not None:
                self._update_deadline()  # the body clock runs again

    def body_wanted(self, cycle: Cycle) -> None:
        """``100 Continue`` went out: the client's body is awaited from now on."""
        if cycle is self._parsing:
            self._update_deadline()

    def _trace(self, step: Step, cycle: Cycle, start_ns: int, **detail: Any) -> TraceEvent:
        assert self.tracer is not None
        if cycle.head.trace_id is not None:
            detail["trace_id"] = cycle.head.trace_id
        return self.tracer.record(step, "server", start_ns, self.conn_id, **detail)

    def trace_response_start(self, cycle: Cycle) -> None:
        # recorded just before the write, so the client cannot see the bytes any earlier
        cycle.wire_ns = self._trace(Step.RESPONSE_START, cycle, cycle.app_ns or cycle.start_ns,
                                    status=cycle.status).end_ns


__all__ = ["ASGI_VERSION", "HttpServerConnection", "ListenContext", "ServerState",
           "WebSocketHandler", "WebSocketHandoff"]
