"""The timeouts of one HTTP connection, on one lazy timer (mixed into ``HttpServerConnection``).

Phases, one at a time, each with its own deadline:
- HEADER (``header_timeout``): from a head's first byte to its end; trickling does not
  push it back (slowloris). Then 408 and close.
- BODY (``body_timeout``, nginx's client_body_timeout): while we wait for more of a
  request body and are reading (not while the app holds the reading, nor before a
  ``100 Continue`` was sent); every read of body bytes pushes it back. Then 408 and close
  if no byte of an answer was sent, else a plain close.
- SEND (``send_timeout``, nginx's send_timeout): while output waits for the client (writing
  paused, or closing with bytes still buffered); the deadline moves whenever the client
  took some of it (the write buffer shrank). Then the connection is aborted.
- IDLE (``keepalive_timeout``): between requests. Then close.
- BUSY: the app works; no deadline.
Moving a deadline is a float store (and a clock reading); the timer notices when it fires.
Every timeout that ends a connection logs one line on ``trunkline.server``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..protocol.http_server import HttpServerProtocol
from ..protocol.http_server_events import Reject
from .config import ServerConfig

if TYPE_CHECKING:
    from .cycle import Cycle

log = logging.getLogger("trunkline.server")

HEADER, IDLE, BUSY, BODY, SEND = range(5)


class ConnectionClock:
    """The deadline half of ``HttpServerConnection`` (which provides the attributes below)."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    core: HttpServerProtocol
    ext: dict[str, object]
    write_paused: bool
    lost: bool
    _config: ServerConfig
    _current: Cycle | None
    _queue: object  # a deque; only its truth is read here
    _parsing: Cycle | None
    _read_paused: bool
    _closing: bool
    _phase: int
    _deadline: float | None
    _timer: asyncio.TimerHandle | None
    _timer_when: float
    _send_left: int  # the write buffer's size when the send deadline was last set

    def _send_error(self, reject: Reject) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- phases

    def _update_deadline(self) -> None:
        """The phase that the connection's state calls for now (SEND keeps the clock while
        writing is paused)."""
        if self.write_paused:
            return
        parsing = self._parsing
        if parsing is not None and not self._read_paused and not parsing.expect:
            self._set_deadline(BODY, self._config.body_timeout)  # every body read moves it
        elif self._current is not None or self._queue:
            self._phase = BUSY
            self._deadline = None
        elif self.core.has_partial_head:
            if self._phase != HEADER:
                self._set_deadline(HEADER, self._config.header_timeout)
        elif self._phase != IDLE:
            self._set_deadline(IDLE, self._config.keepalive_timeout)

    def _reading_paused(self) -> None:
        """Reading stopped: a body we wait for is no longer the client's to hurry."""
        if self._phase == BODY:
            self._phase = BUSY
            self._deadline = None

    def _start_send_clock(self) -> None:
        """Output waits for the client: it must take some within ``send_timeout``."""
        self._send_left = self.transport.get_write_buffer_size()
        self._set_deadline(SEND, self._config.send_timeout)

    def _stop_send_clock(self) -> None:
        if self._phase == SEND:
            self._phase = BUSY
            self._deadline = None

    def _set_deadline(self, phase: int, delay: float) -> None:
        self._phase = phase
        when = self.loop.time() + delay
        self._deadline = when
        if self._timer is None or self._timer_when > when:
            self._arm(when)

    def _arm(self, when: float) -> None:
        """The timer fires at ``when`` (earlier than it would)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._on_timer)
        self._timer_when = when

    # ---------------------------------------------------------------- the timer

    def _on_timer(self) -> None:
        self._timer = None
        when = self._deadline
        phase = self._phase
        if when is None or self.lost or (self._closing and phase != SEND):
            return
        if self.loop.time() < when:
            self._timer = self.loop.call_at(when, self._on_timer)
            self._timer_when = when
            return
        if phase == HEADER and self.core.has_partial_head:
            self._send_error(Reject(408, f"the request head did not arrive within "
                                    f"{self._config.header_timeout:g} s"))
        elif phase == BODY:
            self._body_timed_out()
        elif phase == SEND:
            self._send_timed_out()
        else:
            self.close()

    def _body_timed_out(self) -> None:
        cycle = self._parsing
        seconds = self._config.body_timeout
        reason = f"no byte of the request body came for {seconds:g} s (body timeout)"
        self._parsing = None
        current = self._current
        answered = current is not None and (current is not cycle or current.on_wire)
        log.info("%s: %s; %s", _who(self.ext), reason,
                 "closing" if answered else "answering 408 and closing")
        if cycle is not None:
            cycle.disconnected = True
            cycle.wake()
        if answered:
            self.close()  # an answer is under way: the client can only see a close
        else:
            self._send_error(Reject(408, reason))

    def _send_timed_out(self) -> None:
        size = self.transport.get_write_buffer_size()
        if not size or not (self.write_paused or self._closing):
            self._update_deadline()  # nothing waits any more
            return
        if size < self._send_left:  # the client took some since: it gets another period
            self._start_send_clock()
            return
        log.info("%s: the client took none of %d bytes waiting for it in %g s (send "
                 "timeout); aborting the connection", _who(self.ext), size,
                 self._config.send_timeout)
        self.abort()


def _who(ext: dict[str, object]) -> str:
    peer = ext.get("peer")
    return f"{ext.get('kind')} {ext.get('address')}" + (f" from {peer}" if peer else "")


__all__ = ["BODY", "BUSY", "HEADER", "IDLE", "SEND", "ConnectionClock"]
