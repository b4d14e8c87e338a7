"""Lifecycle tracing: typed, timed events for every step of a call.

Rules:
- Off by default. Code that can trace takes ``tracer: Tracer | None`` and guards each emit with
  ``if tracer is not None``, so tracing off costs one comparison.
- Timestamps are ``time.monotonic_ns()``. An event marks the end of a step; ``start_ns`` is
  where that step began, so ``end_ns - start_ns`` is its duration.
- One vocabulary for every transport; steps that do not apply simply do not appear.
"""

from __future__ import annotations

from .events import Step, TraceEvent, Tracer

__all__ = ["Step", "TraceEvent", "Tracer"]
