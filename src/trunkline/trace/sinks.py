"""Where events go as they happen: memory, the ``logging`` module, a JSON lines file.

A sink is any callable taking a ``TraceEvent``; it runs inline on the event loop, so it must
be quick and must not block for long (the JSON lines sink does one buffered write per event).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any

from .events import Step, TraceEvent, format_duration


class MemorySink:
    """Keeps every event in ``events`` (for tests and for rendering after the call)."""

    def __init__(self) -> None:
        self.events: list[TraceEvent] = []

    def __call__(self, event: TraceEvent) -> None:
        self.events.append(event)

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def steps(self, conn: int | None = None) -> list[Step]:
        return [e.step for e in self.events if conn is None or e.conn == conn]

    def clear(self) -> None:
        self.events.clear()


def describe_event(event: TraceEvent) -> str:
    """One line for humans: ``client conn 1 connect 0.08 ms peer=127.0.0.1:8000``."""
    detail = " ".join(f"{k}={v}" for k, v in event.detail.items())
    text = (f"{event.side} conn {event.conn} {event.step.value} "
            f"{format_duration(event.duration_ns)}")
    return f"{text} {detail}" if detail else text


class LoggingSink:
    """Logs each event on ``logger`` (default ``trunkline.trace``) at ``level``; the event
    itself rides along as ``record.trace_event`` for structured handlers."""

    def __init__(self, logger: logging.Logger | str = "trunkline.trace",
                 level: int = logging.DEBUG) -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = level

    def __call__(self, event: TraceEvent) -> None:
        if self.logger.isEnabledFor(self.level):
            self.logger.log(self.level, "%s", describe_event(event),
                            extra={"trace_event": event})


def event_json(event: TraceEvent, trace_id: str | None = None) -> str:
    """One event as one line of JSON (details that JSON cannot hold become strings)."""
    data: dict[str, Any] = event.to_dict()
    if trace_id is not None:
        data["trace_id"] = trace_id
    return json.dumps(data, default=str, separators=(",", ":"))


class JsonLinesSink:
    """Appends one JSON object per event to a file (a path, or an open text file).

    Each line is flushed as it is written, so ``tail -f`` and a crash both see whole lines.
    ``trace_id`` (e.g. ``tracer.trace_id``) is added to every line when given.
    """

    def __init__(self, target: str | os.PathLike[str] | IO[str], *,
                 trace_id: str | None = None) -> None:
        if isinstance(target, str | os.PathLike):
            self.file: IO[str] = open(target, "a", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        else:
            self.file = target
            self._owned = False
        self.trace_id = trace_id

    def __call__(self, event: TraceEvent) -> None:
        self.file.write(event_json(event, self.trace_id) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self._owned and not self.file.closed:
            self.file.close()

    def __enter__(self) -> JsonLinesSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_json_lines(path: str | os.PathLike[str]) -> list[TraceEvent]:
    """Events written by ``JsonLinesSink``, e.g. a server's, to merge with a client's."""
    with open(path, encoding="utf-8") as f:
        return [TraceEvent.from_dict(json.loads(line)) for line in f if line.strip()]
