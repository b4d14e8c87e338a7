"""Lifecycle tracing: typed, timed events for every step of a call.

Rules:
- Off by default. Code that can trace takes ``tracer: Tracer | None`` and guards each emit with
  ``if tracer is not None``, so tracing off costs one comparison (12 ns per call site in a
  Python loop, most of it the loop itself).
- On, ``Tracer.record(Step.SEND, "client", t, conn, bytes=5)`` costs about 0.7 µs per event:
  686 ns keeping events in ``tracer.events``, 755 ns with a ``MemorySink`` as well (best of
  5 x 200,000 records, CPython 3.11, the 2-core dev VM). An HTTP call records about 8 events.
- Timestamps are ``time.monotonic_ns()``. An event marks the end of a step; ``start_ns`` is
  where that step began, so ``end_ns - start_ns`` is its duration.
- One vocabulary for every transport; steps that do not apply simply do not appear.
- This package's root holds the events (``events``) and the sinks (``sinks``) only, so a
  library module that traces loads nothing else; library modules import ``trace.events``.
- Every number a trace shows is defined once, in ``figures`` (curl's ``time_*`` names, ours,
  the byte counts); ``causal`` orders both sides' events cause before effect. Both are
  imported by module path, like the renderers.
- Renderers are pure functions of the events, imported by module path where used:
  ``summary`` (phases, ``merge``, ``summarize``), ``timeline`` (``render_timeline``,
  httpstat-like text, and ``render_json``), ``mermaid``, ``html``, ``writeout`` (curl's
  ``-w``) and ``render`` (``render(fmt, events)``, the ``--trace`` switch). Only ``cli/``
  prints them.
- Sinks: ``MemorySink``, ``LoggingSink``, ``JsonLinesSink``; OpenTelemetry spans through
  ``trunkline.trace.otel`` (the ``otel`` extra), imported only when used.
"""

from __future__ import annotations

from .events import (
    Side,
    Sink,
    Step,
    TraceEvent,
    Tracer,
    format_duration,
    new_trace_id,
    parse_traceparent,
)
from .sinks import JsonLinesSink, LoggingSink, MemorySink, describe_event, read_json_lines

__all__ = [
    "JsonLinesSink", "LoggingSink", "MemorySink", "Side", "Sink", "Step", "TraceEvent", "Tracer",
    "describe_event", "format_duration", "new_trace_id", "parse_traceparent", "read_json_lines",
]
