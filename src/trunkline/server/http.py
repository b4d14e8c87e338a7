"""``HttpServerConnection``: the asyncio protocol that joins the HTTP/1.1 core to a transport and
runs one ASGI cycle per request.

Rules:
- Requests are answered in the order they arrived. Pipelined requests are parsed ahead and
  wait (bounded by ``max_pipelined``); the next one starts when a response is complete, even
  if the app keeps running (background work after the response).
- The app call runs inside the read callback until it first waits (``_loop.eager``: no
  task for the many calls that never wait); its answer is written at the end of the loop
  pass (``server.writes``). Every trick with asyncio's internals stays in ``_loop/``.
- Backpressure both ways: request body held for the app is bounded by ``body_buffer``
  (reading pauses above it); ``send`` waits while the transport's write buffer is full,
  the last body message too. While writing is paused (a client that pipelines and never
  reads) reading stays paused and no next request starts: what we hold for a client is
  its unsent answers up to the high-water mark, plus the requests parsed ahead (at most
  ``max_pipelined`` after one read; the core holds the rest of a read as bytes).
- Timeouts use one lazy timer per connection: moving a deadline is a float store; the timer
  notices when it fires. The header deadline starts at a head's first byte and is never
  pushed back by more bytes (slowloris); the idle deadline starts when a response ends.
- A ``Reject`` from the core is answered with its status, then a lingering close.
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
from typing import Any

from .._loop.eager import PENDING
from ..protocol.http_server import HttpServerProtocol
from ..protocol.http_server_events import END_OF_MESSAGE, Reject, RequestHead, Upgraded
from ..protocol.http_server_response import error_response
from ..trace.events import Step, TraceEvent
from . import accesslog
from .clock import BUSY, HEADER, IDLE
from .cycle import Cycle
from .forwarded import apply_forwarded
from .scope import ASGI_VERSION, ConnectionFacts, http_scope
from .state import ListenContext, ServerState, WebSocketHandler, WebSocketHandoff
from .writes import ConnectionOutput

_INFO = logging.INFO
_ENABLED = accesslog.ENABLED


class HttpServerConnection(ConnectionOutput, asyncio.Protocol):
    """One accepted connection speaking HTTP/1.1 to an ASGI app."""

    # Slots: over 30 attributes, an instance's dict no longer shares its keys (CPython 3.11)
    # and every attribute read takes the dict-hint path; a slot read stays specialized.
    __slots__ = ("_access", "_access_log", "_app_state", "_buffered", "_closing", "_config",
                 "_current", "_deadline", "_detached", "_drain_waiters", "_draining",
                 "_ending", "_head_ns", "_keepalive", "_linger", "_log_access",
                 "_max_pipelined", "_out", "_parsing", "_peer_eof", "_phase", "_proxies",
                 "_queue", "_queued", "_read_paused", "_rejected", "_returns_none",
                 "_root_path", "_runner", "_send_left", "_stalled", "_starting", "_timer",
                 "_timer_when", "_writes", "app", "conn_id", "context", "core", "ext", "facts",
                 "loop", "lost", "state", "tracer", "transport", "write_paused")

    def __init__(self, state: ServerState, context: ListenContext) -> None:
        self.state = state
        self.context = context
        self.loop = asyncio.get_running_loop()
        self.app: Any = state.app  # Any: the return value is checked (must be None)
        self._returns_none = state.app_returns_none  # (its value need not be looked at)
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
        self._linger: asyncio.TimerHandle | None = None  # _close_after_answer's deadline
        self.lost = False
        self._detached = False
        self._draining = False
        self._peer_eof = False
        self._rejected: Reject | None = None
        self._ending = False  # _draining, _peer_eof or _rejected: one test per response
        self._phase = HEADER
        self._deadline: float | None = None
        self._send_left = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self.facts: ConnectionFacts = None  # type: ignore[assignment]  # connection_made
        self._max_pipelined = self._config.max_pipelined
        self.ext: dict[str, Any] = {}  # the trunkline.transport extension (facts.ext)
        self._root_path = self._config.root_path
        self._proxies = state.proxies
        self._app_state = state.app_state
        self._access, self._access_log = accesslog.logger, state.access
        self._log_access = self._config.access_log
        self._keepalive = self._config.keepalive_timeout
        self._runner, self._writes = state.on_loop(self.loop)
        self._queued = self._writes.queued
        self._out: bytes | None = None  # an answer queued for the end of the loop pass
        self._starting = False  # _start_next's loop runs (an app call may end inside it)

    # ---------------------------------------------------------------- connection events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        state = self.state
        connections = state.connections
        connections.add(self)
        tracer = self.tracer
        if tracer is not None:
            self.conn_id = tracer.new_connection()
        self.facts = facts = ConnectionFacts(transport, self.context)
        self.ext = facts.ext
        if not self._root_path:  # (with one, http_scope makes each scope)
            self.core.scope_template = facts.template
        if tracer is not None:
            tracer.record(Step.ACCEPT, "server", time.monotonic_ns(), self.conn_id,
                          transport=self.ext["kind"], local=self.ext["local"],
                          peer=self.ext["peer"])
        cap = self._config.max_connections
        if connections.draining or (cap is not None and len(connections) > cap):
            # Over capacity: answer the first request with 503 and close.
            self._ending = True
            self._rejected = Reject(503, "the server is at its connection limit"
                                    if not connections.draining else
                                    "the server is shutting down")
        # Even a refused connection gets the header deadline: a silent one is then closed.
        self._set_deadline(HEADER, self._config.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._closing or self._detached:
            return
        if self._rejected is not None:
            if self._current is None and not self._queue:
                self._send_error(self._rejected)
            return
        # The header deadline starts (below, in _update_deadline) only if these bytes leave
        # a head unfinished: a whole head in one read costs no clock reading here.
        core = self.core
        if self.tracer is not None and not core.has_partial_head:
            self._head_ns = time.monotonic_ns()  # a head starts in this read
        for event in core.receive_data(data):
            kind = type(event)
            if kind is RequestHead:
                self._on_head(event)  # type: ignore[arg-type]
            elif kind is bytes:
                self._on_body(event)  # type: ignore[arg-type]
            elif event is END_OF_MESSAGE:
                cycle = self._parsing
                if cycle is not None:
                    cycle.complete = True
                    if cycle.waiter is not None:
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
        if core.held:
            self._pause_reading()  # _more() goes on with them when the queue has room
        if self._current is not None and self._parsing is None and not self.write_paused:
            self._phase = BUSY  # no deadline while the app works (the timer finds None)
            self._deadline = None
        elif self._phase != IDLE or self._parsing is not None or self._queue or \
                core.has_partial_head:
            self._update_deadline()  # a body to wait for, the next head...
        # (else idle, answered inside this call: the idle deadline is set already)

    def eof_received(self) -> bool | None:
        # The client half-closed: finish what is in flight, then close. (TLS cannot
        # half-close; its transport closes itself whatever we return.)
        self._peer_eof = self._ending = True
        if self._linger is not None or (self._current is None and not self._queue):
            self.close()
        return None if self.ext["kind"] == "tls" else True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.state.connections.forget(self)
        self._out = None
        self._cancel_timers()
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
        scope = head.scope
        if scope is None:  # a root path: the core has no template (connection_made)
            scope = http_scope(head, self.facts, self._root_path, self._app_state)
        else:  # the core filled the request's keys in; what is left is ours
            app_state = self._app_state
            scope["state"] = app_state.copy() if app_state else {}
            scope["extensions"] = {"trunkline.transport": self.ext}
        if self._proxies is not None:
            apply_forwarded(scope, self._proxies)
        # (Cycle has no __init__: see there)
        cycle = Cycle()
        cycle.conn = self
        cycle.head = head
        cycle.scope = scope
        cycle.body = []
        cycle.expect = head.expect_continue
        # Read on every request: stored here, so reading them is a specialized instance load
        # (a class default read through an instance takes the generic lookup).
        cycle.waiter = None
        cycle.disconnected = False
        cycle.done = False
        cycle.started = False
        cycle.on_wire = False
        cycle.buffered = 0
        cycle.body_bytes = 0
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
        self._ending = True
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
        self._close_after_answer()
        if self._log_access and accesslog.logger.isEnabledFor(logging.INFO):
            self._access_log.flush()
            accesslog.log_rejected(self.ext, reject.status, reject.reason)

    # ---------------------------------------------------------------- cycles

    def _start_next(self) -> None:
        """Start the queued requests in order while nothing holds them back. An app call
        runs at once, inside this callback, until it first waits (``EagerRunner``; then it
        goes on in a task that a graceful stop waits for): most answer without waiting and
        are done when ``start`` returns. A call that ends inside this loop does not start the
        next one itself (``_starting``): the loop does, so pipelined requests never nest."""
        if self._starting:
            return
        self._starting = True
        try:
            queue = self._queue
            while queue and self._current is None and not (self.write_paused or
                                                           self._closing):
                self._current = cycle = queue.popleft()
                if cycle.head.upgrade == b"websocket":
                    handler = self.state.websocket_handler
                    if handler is not None:
                        self._hand_off(cycle, handler)
                        return
                if self._parsing is None:  # (else the body clock keeps running)
                    self._phase = BUSY  # no deadline while the app works; its answer
                    self._deadline = None  # sets the idle one (even inside this call)
                if self.tracer is not None:
                    cycle.start(self._runner)  # (timed and traced)
                    continue
                # Cycle.start inline (one call less per request): the app call, stepped at
                # once; it finishes here, or goes on in a task (PENDING).
                runner = self._runner
                try:
                    result = runner.call(self.app(cycle.scope, cycle.receive, cycle.send),
                                         cycle, self._returns_none)
                except BaseException as exc:  # noqa: BLE001 - logged, then answered
                    cycle.raised(exc, runner)
                else:
                    if result is None:
                        if not (cycle.done or cycle.disconnected):
                            cycle.returned(None)
                    elif result is not PENDING:
                        cycle.returned(result)
        finally:
            self._starting = False

    def response_done(self, cycle: Cycle) -> None:
        """The response is complete: log it, then the next request or close."""
        if self._log_access:
            try:
                enabled = _ENABLED[_INFO]  # (isEnabledFor's answer: see accesslog.ENABLED)
            except KeyError:
                enabled = self._access.isEnabledFor(_INFO)
            if enabled and not self._access.disabled:
                self._access_log.request(self.loop, self.ext, cycle.head, cycle.status,
                                         cycle.body_bytes)
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
        core = self.core
        if cycle.complete and not (self._queue or self._ending or self._read_paused or
                                   core.held or core.has_partial_head) and \
                core.keep_alive and self._phase != IDLE:
            # _next_after's usual case inline (one call less per request): nothing more to
            # answer or read, the connection idles; (_set_deadline inlined too)
            self._phase = IDLE
            when = self._deadline = self.loop.time() + self._keepalive
            if self._timer is None or self._timer_when > when:
                self._arm(when)
            return
        self._next_after(cycle)

    def _next_after(self, cycle: Cycle) -> None:
        """After a response: the next request, more reading, or the close."""
        if not self.core.keep_alive or self._ending or \
                (not cycle.complete and cycle.head.expect_continue):
            self._after_last_response(cycle)
            return
        if self._queue:
            self._start_next()
            return
        if self._read_paused or self.core.held:
            self._more(self._config.body_buffer)
            if self._current is not None or self._queue or self._closing:
                return  # the held bytes had a request: it runs
        if self._phase != IDLE and not self.core.has_partial_head:
            # (_set_deadline inlined: this runs once per request)
            self._phase = IDLE
            when = self._deadline = self.loop.time() + self._keepalive
            if self._timer is None or self._timer_when > when:
                self._arm(when)
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
        self.flush()  # the answers before the upgrade request
        handler(WebSocketHandoff(cycle.head, cycle.scope, self.transport, cycle.rest,
                                 self.app, self.state))

    # ---------------------------------------------------------------- helpers

    def shutdown(self) -> None:
        """Graceful shutdown: close now if idle, else after the response in flight."""
        self._draining = self._ending = True
        self.core.close_after_response()
        if self._current is None and not self._queue:
            self.close()

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

    def trace_app_call(self, cycle: Cycle) -> None:
        self._trace(Step.APP_CALL, cycle, cycle.app_ns, status=cycle.status)

    def trace_response_start(self, cycle: Cycle) -> None:
        # recorded just before the write, so the client cannot see the bytes any earlier
        cycle.wire_ns = self._trace(Step.RESPONSE_START, cycle, cycle.app_ns or cycle.start_ns,
                                    status=cycle.status).end_ns


__all__ = ["ASGI_VERSION", "HttpServerConnection", "ListenContext", "ServerState",
           "WebSocketHandler", "WebSocketHandoff"]
