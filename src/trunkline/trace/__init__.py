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
- Renderers are pure functions of the events: ``render_timeline`` (httpstat-like text),
  ``render_json``, ``render_mermaid``, ``render_html`` and ``write_out`` (curl's ``-w``).
  Only ``cli/`` prints them.
- Sinks: ``MemorySink``, ``LoggingSink``, ``JsonLinesSink``; OpenTelemetry spans through
  ``trunkline.trace.otel`` (the ``otel`` extra), imported only when used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .events import Side, Sink, Step, TraceEvent, Tracer, new_trace_id, parse_traceparent
from .html import render_html
from .mermaid import render_mermaid
from .sinks import JsonLinesSink, LoggingSink, MemorySink, describe_event, read_json_lines
from .summary import Endpoint, Phase, Summary, format_duration, merge, summarize
from .timeline import render_json, render_timeline
from .writeout import ResponseFacts, load_format, write_out

#: ``--trace=FORMAT`` names and their renderers; each takes (events, *, conn, local, remote).
RENDERERS = {"text": render_timeline, "json": render_json, "mermaid": render_mermaid,
             "html": render_html}


def render(fmt: str, events: Iterable[TraceEvent], **options: Any) -> str:
    """Render ``events`` as ``fmt`` (text, json, mermaid or html): the ``--trace`` switch."""
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown trace format {fmt!r}; choose one of "
                         f"{', '.join(RENDERERS)}") from None
    return renderer(events, **options)

__all__ = [
    "RENDERERS", "Endpoint", "JsonLinesSink", "LoggingSink", "MemorySink", "Phase",
    "ResponseFacts", "Side", "Sink", "Step", "Summary", "TraceEvent", "Tracer",
    "describe_event", "format_duration", "load_format", "merge", "new_trace_id",
    "parse_traceparent", "read_json_lines", "render", "render_html", "render_json",
    "render_mermaid", "render_timeline", "summarize", "write_out",
]
