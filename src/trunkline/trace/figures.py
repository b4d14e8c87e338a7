"""Every number a trace shows, defined once: which event's which edge marks it.

Rules:
- A time figure is an offset from the call's start (the earliest start among the call's
  client events), cumulative like curl's ``-w`` ``time_*`` names: ``time_connect`` includes
  the name lookup, and so on. It is read off one edge of the first event of one of its
  ``steps`` (the first step listed that happened wins); a figure whose steps did not happen is
  None (renderers leave it out; ``-w`` prints 0, as curl does).
- ``time_pretransfer`` is the *start* of sending the request (as curl takes it, before the
  request goes out), so ``time_starttransfer - time_pretransfer`` holds sending the request,
  the server's work and the first byte's way back.
- The text timeline's columns are the differences between consecutive figures that have a
  ``phase`` (in ``FIGURES`` order), so the columns always sum to ``time_total``.
- A count figure sums one ``detail`` key over the call's events of some steps, so it is
  exactly what the events show.
- To add a figure (a new step, e.g. a "discover" step before the name lookup), add a line to
  ``FIGURES`` or ``COUNTS`` in the place it happens; every renderer and ``-w`` picks it up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .events import Step, TraceEvent


@dataclass(frozen=True)
class Figure:
    """A time figure: ``name`` (curl's ``-w`` name, or ours in the same style) is where an
    edge of the first of ``steps`` lies; ``phase`` names the timeline column ending there."""

    name: str
    steps: tuple[Step, ...]
    edge: Literal["start", "end"]
    phase: str | None
    meaning: str
    marker: str = ""  # the label on the timeline's tick, e.g. "connect"; default: name[5:]

    @property
    def tick(self) -> str:
        return self.marker or self.name.removeprefix("time_")


#: The time figures, in the order they happen in a call. ``{connect}`` in a phase is the
#: transport's word for connecting ("TCP Connection", "Unix Connect", ...).
FIGURES: tuple[Figure, ...] = (
    Figure("time_discover", (Step.DISCOVER,), "end", "Discover",
           "a call by name: the registry's ranked answer for the name (trunkline's own)"),
    Figure("time_namelookup", (Step.RESOLVE,), "end", "DNS Lookup",
           "the host name was resolved (system resolver or a DNS server)"),
    Figure("time_connect", (Step.CONNECT,), "end", "{connect}",
           "the transport is connected (TCP handshake, Unix connect, FIFO rendezvous)"),
    Figure("time_appconnect", (Step.TLS,), "end", "TLS Handshake",
           "the TLS handshake is done"),
    Figure("time_pretransfer", (Step.REQUEST_HEADERS, Step.SEND), "start", "Pre-transfer",
           "the request is about to be sent (before its first byte is written)"),
    Figure("time_requestsent", (Step.REQUEST_BODY, Step.REQUEST_HEADERS, Step.SEND), "end",
           None, "the whole request was handed to the kernel (trunkline's own)"),
    Figure("time_starttransfer", (Step.FIRST_BYTE, Step.RECEIVE), "end",
           "Server Processing", "the first byte of the answer arrived"),
    Figure("time_total", (Step.RESPONSE_DONE,), "end", "Content Transfer",
           "the response is complete (without one: the call's last event ended)"),
)

FIGURE_NAMES = tuple(f.name for f in FIGURES)


@dataclass(frozen=True)
class Count:
    """A count figure: the sum of ``detail[key]`` over the call's events of ``steps``, for
    each key in ``keys``."""

    name: str
    steps: frozenset[Step]
    keys: tuple[str, ...]
    meaning: str


COUNTS: tuple[Count, ...] = (
    Count("bytes_sent", frozenset({Step.REQUEST_HEADERS, Step.REQUEST_BODY, Step.SEND}),
          ("bytes",), "bytes the client wrote: request head and body, raw sends"),
    Count("bytes_received", frozenset({Step.RESPONSE_DONE, Step.RECEIVE}),
          ("head_bytes", "bytes"), "bytes the client read: response head and body, raw reads"),
    Count("size_upload", frozenset({Step.REQUEST_BODY, Step.SEND}), ("bytes",),
          "curl's size_upload: request body bytes (raw sends)"),
    Count("size_download", frozenset({Step.RESPONSE_DONE, Step.RECEIVE}), ("bytes",),
          "curl's size_download: response body bytes (raw reads)"),
)


def _marks(event: TraceEvent) -> bool:
    # an empty read (EOF) is no answer byte
    return event.step is not Step.RECEIVE or bool(event.detail.get("bytes", 1))


def figure_values(call: Sequence[TraceEvent]) -> dict[str, int | None]:
    """Every time figure of one call (its client events, time order), in ns from its start;
    ``time_total`` is never None (0 for no events)."""
    if not call:
        return {f.name: (0 if f.name == "time_total" else None) for f in FIGURES}
    t0 = min(e.start_ns for e in call)
    values: dict[str, int | None] = {}
    for figure in FIGURES:
        value = None
        for step in figure.steps:
            event = next((e for e in call if e.step is step and _marks(e)), None)
            if event is not None:
                value = (event.start_ns if figure.edge == "start" else event.end_ns) - t0
                break
        values[figure.name] = value
    if values["time_total"] is None:
        values["time_total"] = max(e.end_ns for e in call) - t0
    return values


def count_values(call: Sequence[TraceEvent]) -> dict[str, int]:
    """Every count figure of one call, summed from its events' details."""
    return {c.name: sum(int(e.detail.get(key, 0) or 0) for e in call if e.step in c.steps
                        for key in c.keys) for c in COUNTS}


@dataclass(frozen=True)
class Phase:
    """One column of the timeline: ``name`` took ``duration_ns`` and ended at ``end_ns``."""

    name: str
    duration_ns: int
    end_ns: int  # cumulative, from the call's start
    figure: str  # the figure it ends at, e.g. "time_connect"


def phases(values: dict[str, int | None], connect_label: str = "Connect") -> list[Phase]:
    """The timeline's columns: from one phase figure to the next that happened. A column of
    zero length between two figures is left out (e.g. Pre-transfer right after TLS). The
    durations add up to ``time_total`` (a figure earlier than the one before adds 0)."""
    out: list[Phase] = []
    last = 0
    for figure in FIGURES:
        at = values.get(figure.name)
        if figure.phase is None or at is None:
            continue
        duration = max(0, at - last)
        last = max(last, at)
        if duration == 0 and figure.name not in ("time_total", "time_connect"):
            continue
        out.append(Phase(figure.phase.format(connect=connect_label), duration, last,
                         figure.name))
    return out


__all__ = ["COUNTS", "FIGURES", "FIGURE_NAMES", "Count", "Figure", "Phase", "count_values",
           "figure_values", "phases"]
