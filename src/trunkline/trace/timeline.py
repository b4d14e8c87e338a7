"""Text renderers: an httpstat-like terminal timeline and the ``--trace=json`` document.

Both are pure: events in, text out. The timeline is plain text (rich prints it as is); the
``Summary`` it is drawn from (``trunkline.trace.summary.summarize``) is there for richer renderings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .causal import causal_order
from .events import TraceEvent, format_duration
from .figures import FIGURES
from .summary import Summary, summarize

#: The tick under each column: the figure it ends at ("connect" for time_connect).
_TICKS = {f.name: f.tick for f in FIGURES}


def describe_call(summary: Summary) -> str:
    """``tcp 127.0.0.1:40000 -> 127.0.0.1:8000 (api.test via udp 127.0.0.1:5353)``."""
    kind = {"tls": "tcp+tls"}.get(summary.kind, summary.kind or "stream")
    local = summary.local.text if summary.local else "(unnamed)"
    remote = summary.remote.text if summary.remote else "?"
    text = f"{kind} {local} -> {remote}"
    if summary.host:
        text += f" ({summary.host} via {summary.resolver})"
    if summary.reused:
        text += " (reused connection)"
    found = summary.discovered
    if found:
        stale = ", stale: the registry is unreachable" if found.get("stale") else ""
        text += (f"\n  by name: {found.get('service')} in {found.get('backend')}, "
                 f"{found.get('instances')} instance(s){stale}; chose {found.get('chosen')}: "
                 f"{found.get('reason')}")
        if found.get("failed"):
            text += f" (after {found['failed']} failed: {found.get('error')})"
    return text


def render_timeline(events: Iterable[TraceEvent], *, conn: int | None = None,
                    local: Any = None, remote: Any = None) -> str:
    """An httpstat-style timeline of one call: one column per figure (``trace.figures``)
    that happened, each the time since the one before, so the columns sum to the total.

    ::

        tcp 127.0.0.1:40000 -> 127.0.0.1:8000 (api.test via udp 127.0.0.1:5353)

           DNS Lookup    TCP Connection   Server Processing   Content Transfer
        [   0.31 ms    |    0.08 ms     |      0.12 ms      |      0.05 ms      ]
                       |                |                   |                   |
          namelookup:0.31 ms            |                   |                   |
                            connect:0.39 ms                 |                   |
                                                starttransfer:0.55 ms           |
                                                                      total:0.60 ms
    """
    summary = summarize(events, conn=conn, local=local, remote=remote)
    phases = summary.phases()
    if not phases:
        return "no client events to show"
    names = [p.name for p in phases]
    durations = [format_duration(p.duration_ns) for p in phases]
    labels = [f"{_TICKS[p.figure]}:{format_duration(p.end_ns)}" for p in phases]
    widths = [max(len(n), len(d)) + 2 for n, d in zip(names, durations, strict=True)]
    # edges[i]: the column of the '|' (or the closing ']') after phase i. Widen a column
    # when its cumulative label would not fit to the left of its edge.
    edges: list[int] = []
    for i, label in enumerate(labels):
        edge = sum(widths[: i + 1]) + i + 1
        if edge < len(label) - 1:
            widths[i] += len(label) - 1 - edge
            edge = len(label) - 1
        edges.append(edge)
    lines = [describe_call(summary), ""]
    lines.append(" " + " ".join(n.center(w) for n, w in zip(names, widths, strict=True)))
    lines.append("[" + "|".join(d.center(w) for d, w in zip(durations, widths, strict=True))
                 + "]")
    lines.append(_ticks(" " * edges[0], edges))
    for i, label in enumerate(labels):
        start = max(0, edges[i] - len(label) + 1)
        lines.append(_ticks(" " * start + label, edges[i + 1:]))
    extra = []
    if summary.bytes_sent or summary.bytes_received:
        extra.append(f"sent {summary.bytes_sent} B, received {summary.bytes_received} B")
    if summary.closed_by:
        extra.append(f"closed by {summary.closed_by}")
    if summary.error:
        extra.append(f"error: {summary.error}")
    if extra:
        lines += ["", "; ".join(extra)]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _ticks(prefix: str, edges: list[int]) -> str:
    """``prefix`` followed by a '|' at each edge column it does not already cover."""
    chars = list(prefix)
    for edge in edges:
        if edge >= len(chars):
            chars += [" "] * (edge - len(chars)) + ["|"]
    return "".join(chars)


def render_json(events: Iterable[TraceEvent], *, conn: int | None = None, local: Any = None,
                remote: Any = None, trace_id: str | None = None,
                indent: int | None = 2) -> str:
    """``--trace=json``: every event (time order) plus the call's summary, as one document."""
    events = causal_order(events)
    summary = summarize(events, conn=conn, local=local, remote=remote)
    document: dict[str, Any] = {
        "trace_id": trace_id,
        "events": [e.to_dict() for e in events],
        "summary": summary.to_dict(),
    }
    return json.dumps(document, indent=indent, default=str)
