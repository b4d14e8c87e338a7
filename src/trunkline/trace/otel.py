"""OpenTelemetry export (``pip install 'trunkline[otel]'``): a connection's events as spans.

Two shapes, chosen with ``mode``:
- ``"events"`` (default): one span per connection, each step a span event at its end time;
- ``"spans"``: one span per connection with a child span per step (start to end).

Our timestamps are monotonic; OpenTelemetry wants wall-clock ns, so each is shifted by the
tracer's ``epoch_offset_ns``. When a trace id is known (``Tracer.trace_id``), spans join that
OpenTelemetry trace, so a client's and a server's spans of one call line up.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from .events import Step, TraceEvent
from .summary import summarize

if TYPE_CHECKING:
    from opentelemetry.trace import Span
    from opentelemetry.trace import Tracer as OtelTracer

Mode = Literal["events", "spans"]


def _attributes(detail: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry attribute values are scalars or lists of one scalar type."""
    out: dict[str, Any] = {}
    for key, value in detail.items():
        if isinstance(value, str | bool | int | float):
            out[f"trunkline.{key}"] = value
        elif isinstance(value, list | tuple):
            out[f"trunkline.{key}"] = [str(v) for v in value]
        elif value is not None:
            out[f"trunkline.{key}"] = json.dumps(value, default=str)
    return out


def _otel_tracer(otel_tracer: OtelTracer | None) -> OtelTracer:
    try:
        from opentelemetry import trace
    except ImportError as exc:  # pragma: no cover - depends on the install
        from ..errors import UnsupportedError
        raise UnsupportedError("OpenTelemetry export needs the otel extra: "
                               "pip install 'trunkline[otel]'") from exc
    return otel_tracer or trace.get_tracer("trunkline")


def export_connection(events: Iterable[TraceEvent], otel_tracer: OtelTracer | None = None, *,
                      mode: Mode = "events", epoch_offset_ns: int | None = None,
                      trace_id: str | None = None) -> Span | None:
    """Emit the events of one connection (one side) as a span; returns it (already ended)."""
    from opentelemetry import context, trace

    events = sorted(events, key=lambda e: (e.start_ns, e.end_ns))
    if not events:
        return None
    tracer = _otel_tracer(otel_tracer)
    offset = (time.time_ns() - time.monotonic_ns()) if epoch_offset_ns is None else \
        epoch_offset_ns
    side = events[0].side
    # a server learns the call's trace id from the request and records it in a detail
    trace_id = next((str(e.detail["trace_id"]) for e in events if e.detail.get("trace_id")),
                    trace_id)
    parent_ctx = None
    if trace_id is not None:
        remote = trace.SpanContext(trace_id=int(trace_id, 16),
                                   span_id=int(secrets.token_hex(8), 16), is_remote=True,
                                   trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        parent_ctx = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    attributes: dict[str, Any] = {"trunkline.side": side, "trunkline.conn": events[0].conn}
    if side == "client":
        summary = summarize(events)
        if summary.kind:
            attributes["network.transport"] = "unix" if summary.kind in ("unix", "fifo") \
                else "tcp"
            attributes["trunkline.kind"] = summary.kind
        if summary.remote is not None:
            attributes["server.address"] = summary.remote.ip
            if summary.remote.port:
                attributes["server.port"] = summary.remote.port
        if summary.local is not None:
            attributes["network.local.address"] = summary.local.ip
    accept = next((e for e in events if e.step is Step.ACCEPT), None)
    if accept is not None and accept.detail.get("peer"):
        attributes["client.address"] = str(accept.detail["peer"])
    kind = trace.SpanKind.CLIENT if side == "client" else trace.SpanKind.SERVER
    span = tracer.start_span(f"trunkline {side} connection", context=parent_ctx, kind=kind,
                             attributes=attributes,
                             start_time=min(e.start_ns for e in events) + offset)
    if mode == "events":
        for e in events:
            span.add_event(e.step.value, attributes={
                "trunkline.duration_ns": e.duration_ns, **_attributes(e.detail)},
                timestamp=e.end_ns + offset)
    else:
        ctx = trace.set_span_in_context(span, context.Context())
        for e in events:
            child = tracer.start_span(e.step.value, context=ctx, kind=trace.SpanKind.INTERNAL,
                                      attributes=_attributes(e.detail),
                                      start_time=e.start_ns + offset)
            child.end(end_time=e.end_ns + offset)
    span.end(end_time=max(e.end_ns for e in events) + offset)
    return span


class OtelSink:
    """A live sink: buffers each connection's events and exports them as a span when the
    connection's CLOSE arrives (``flush()`` exports whatever is still open)."""

    def __init__(self, otel_tracer: OtelTracer | None = None, *, mode: Mode = "events",
                 epoch_offset_ns: int | None = None, trace_id: str | None = None) -> None:
        self.otel_tracer = _otel_tracer(otel_tracer)
        self.mode: Mode = mode
        self.epoch_offset_ns = (time.time_ns() - time.monotonic_ns()
                                if epoch_offset_ns is None else epoch_offset_ns)
        self.trace_id = trace_id
        self._open: dict[tuple[str, int], list[TraceEvent]] = {}

    @classmethod
    def for_tracer(cls, tracer: Any, otel_tracer: OtelTracer | None = None, *,
                   mode: Mode = "events") -> OtelSink:
        """A sink sharing ``tracer``'s clock offset and trace id; add it with ``add_sink``."""
        return cls(otel_tracer, mode=mode, epoch_offset_ns=tracer.epoch_offset_ns,
                   trace_id=tracer.trace_id)

    def __call__(self, event: TraceEvent) -> None:
        key = (event.side, event.conn)
        self._open.setdefault(key, []).append(event)
        if event.step is Step.CLOSE:
            self._export(key)

    def _export(self, key: tuple[str, int]) -> None:
        export_connection(self._open.pop(key), self.otel_tracer, mode=self.mode,
                          epoch_offset_ns=self.epoch_offset_ns, trace_id=self.trace_id)

    def flush(self) -> None:
        for key in list(self._open):
            self._export(key)
