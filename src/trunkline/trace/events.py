"""The event vocabulary and the ``Tracer`` that collects events and hands them to sinks.

Cost: off is one ``is not None`` comparison at each call site. On, ``Tracer.record`` costs
about 0.7 µs per event (see the ``trunkline.trace`` docstring for the measurement).
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

Side = Literal["client", "server"]


class Step(StrEnum):
    """Every step a call can take, in the order they usually happen."""

    DISCOVER = "discover"  # service name -> ranked addresses (registry, cached or read)
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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceEvent:
        """The inverse of ``to_dict`` (e.g. for events read back from a JSON lines file)."""
        return cls(Step(data["step"]), data["side"], int(data["start_ns"]), int(data["end_ns"]),
                   int(data.get("conn", 0)), dict(data.get("detail", {})))


# A frozen dataclass's __init__ goes through object.__setattr__ per field, which costs about
# twice as much as the whole rest of record(); the slot descriptors set the same fields directly.
_new = object.__new__
_set_step = TraceEvent.__dict__["step"].__set__
_set_side = TraceEvent.__dict__["side"].__set__
_set_start = TraceEvent.__dict__["start_ns"].__set__
_set_end = TraceEvent.__dict__["end_ns"].__set__
_set_conn = TraceEvent.__dict__["conn"].__set__
_set_detail = TraceEvent.__dict__["detail"].__set__
_monotonic_ns = time.monotonic_ns

Sink = Callable[[TraceEvent], None]


def new_trace_id() -> str:
    """32 hex digits, the W3C ``traceparent`` trace-id format (so OpenTelemetry can reuse it)."""
    return secrets.token_hex(16)


class Tracer:
    """Collects events; every sink sees each event as it happens. ``events`` keeps them all.

    ``trace_id`` names this trace across processes: a client sends it (e.g. in a
    ``traceparent`` header) and the server records it, so both sides' events can be merged
    (``trunkline.trace.summary.merge``). Timestamps are ``time.monotonic_ns()``, which is one
    clock for every process on the host; ``epoch_offset_ns`` turns them into wall-clock time.
    """

    def __init__(self, *sinks: Sink, keep: bool = True, trace_id: str | None = None) -> None:
        self.sinks = list(sinks)
        self.events: list[TraceEvent] = []
        self._keep = keep
        self._ids = itertools.count(1)
        self.trace_id = trace_id or new_trace_id()
        self.epoch_offset_ns = time.time_ns() - time.monotonic_ns()

    def new_connection(self) -> int:
        return next(self._ids)

    def record(self, step: Step, side: Side, start_ns: int, conn: int = 0,
               end_ns: int | None = None, **detail: Any) -> TraceEvent:
        event: TraceEvent = _new(TraceEvent)
        _set_step(event, step)
        _set_side(event, side)
        _set_start(event, start_ns)
        _set_end(event, _monotonic_ns() if end_ns is None else end_ns)
        _set_conn(event, conn)
        _set_detail(event, detail)
        if self._keep:
            self.events.append(event)
        for sink in self.sinks:
            sink(event)
        return event

    def add_sink(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def traceparent(self, span_id: str | None = None, *, sampled: bool = False) -> str:
        """A W3C ``traceparent`` header value carrying this trace's id. Not sampled unless
        asked: the flag tells a real backend to record, which is the caller's decision."""
        return f"00-{self.trace_id}-{span_id or secrets.token_hex(8)}-{'01' if sampled else '00'}"


def parse_traceparent(value: str) -> str | None:
    """The trace id inside a ``traceparent`` header value, or None if it is malformed."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32:
        return None
    try:
        int(parts[1], 16)
    except ValueError:
        return None
    return parts[1].lower()


def format_duration(ns: int) -> str:
    """``"0.08 ms"``, ``"12.35 ms"``, ``"1.204 s"``: short, and the same everywhere."""
    if ns >= 1_000_000_000:
        return f"{ns / 1e9:.3f} s"
    return f"{ns / 1e6:.2f} ms"
