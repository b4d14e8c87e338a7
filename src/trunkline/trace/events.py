"""The event vocabulary and the ``Tracer`` that collects events and hands them to sinks."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

Side = Literal["client", "server"]


class Step(str, Enum):
    """Every step a call can take, in the order they usually happen."""

    SOCKET = "socket"  # socket created (identity known)
    RESOLVE = "resolve"  # name resolution (system resolver, DNS server or registry)
    CONNECT = "connect"  # transport connected (TCP handshake, UDS connect, FIFO rendezvous)
    TLS = "tls"  # TLS handshake done
    ACCEPT = "accept"  # server: connection accepted
    REQUEST_HEADERS = "request_headers"  # request head sent (client) / parsed (server)
    REQUEST_BODY = "request_body"  # request body sent / received
    APP_CALL = "app_call"  # server: app called
    RESPONSE_START = "response_start"  # server: response head sent
    FIRST_BYTE = "first_byte"  # client: first response byte
    RESPONSE_DONE = "response_done"  # response complete
    REUSE = "reuse"  # client: pooled connection reused
    RELEASE = "release"  # client: connection returned to the pool
    SEND = "send"  # raw stream / datagram / WebSocket message sent
    RECEIVE = "receive"  # raw stream / datagram / WebSocket message received
    UPGRADE = "upgrade"  # WebSocket upgrade done
    CLOSE = "close"  # connection closed; detail says who closed


@dataclass(frozen=True, slots=True)
class TraceEvent:
    step: Step
    side: Side
    start_ns: int
    end_ns: int
    conn: int  # connection number within this tracer, so interleaved calls can be told apart
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step.value,
            "side": self.side,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ns": self.duration_ns,
            "conn": self.conn,
            **({"detail": self.detail} if self.detail else {}),
        }


Sink = Callable[[TraceEvent], None]


class Tracer:
    """Collects events; every sink sees each event as it happens. ``events`` keeps them all."""

    def __init__(self, *sinks: Sink, keep: bool = True) -> None:
        self.sinks = list(sinks)
        self.events: list[TraceEvent] = []
        self._keep = keep
        self._ids = itertools.count(1)

    def new_connection(self) -> int:
        return next(self._ids)

    def record(self, step: Step, side: Side, start_ns: int, conn: int = 0,
               end_ns: int | None = None, **detail: Any) -> TraceEvent:
        event = TraceEvent(step, side, start_ns,
                           time.monotonic_ns() if end_ns is None else end_ns, conn, detail)
        if self._keep:
            self.events.append(event)
        for sink in self.sinks:
            sink(event)
        return event
