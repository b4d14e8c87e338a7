"""``trunkline serve --trace[=text|json]`` and ``--trace-file PATH``: the server's events.

Every event is written as it happens: ``--trace`` (text) prints one line per event on stderr
(``trace server conn 3 request_headers 0.01 ms method=GET ... trace_id=...``),
``--trace=json`` one JSON object per line on stderr, and ``--trace-file PATH`` appends JSON
lines to PATH, the form ``trunkline call --server-trace PATH`` merges with a client's trace.
Nothing is kept in memory (``Tracer(keep=False)``), so a long-running server does not grow.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..trace import JsonLinesSink, Sink, TraceEvent, Tracer, describe_event

F = TypeVar("F", bound=Callable[..., Any])

TRACE_EXAMPLES = """\b
Tracing (each request's server-side steps, with the client's trace id):
  trunkline serve hello --on tcp://127.0.0.1:8000 --trace          text lines on stderr
  trunkline serve hello --on unix:///tmp/app.sock --trace=json     JSON lines on stderr
  trunkline serve hello --on tcp://127.0.0.1:8000 --trace-file server.jsonl
  trunkline call http://127.0.0.1:8000/ --trace=mermaid --server-trace server.jsonl"""


def trace_options(command: F) -> F:
    command = click.option(
        "--trace-file", metavar="PATH",
        help="Append every event to PATH as JSON lines (for 'trunkline call "
             "--server-trace PATH').")(command)
    command = click.option(
        "--trace", "trace", is_flag=False, flag_value="text", default=None,
        type=click.Choice(["text", "json"]), metavar="[=text|json]",
        help="Print every traced step on stderr as it happens (text, or JSON lines).")(command)
    return command


def _text_sink(event: TraceEvent) -> None:
    sys.stderr.write(f"trace {describe_event(event)}\n")
    sys.stderr.flush()


def open_tracer(fmt: str | None, path: str | None) -> tuple[Tracer | None, Callable[[], None]]:
    """The server's tracer (None when not asked) and what closes its file."""
    if fmt is None and path is None:
        return None, lambda: None
    sinks: list[Sink] = []
    if fmt == "text":
        sinks.append(_text_sink)
    elif fmt == "json":
        sinks.append(JsonLinesSink(sys.stderr))
    file_sink = None
    if path is not None:
        try:
            file_sink = JsonLinesSink(path)
        except OSError as exc:
            raise click.BadParameter(f"cannot open {path}: {exc.strerror or exc}",
                                     param_hint="--trace-file") from None
        sinks.append(file_sink)
    return Tracer(*sinks, keep=False), (file_sink.close if file_sink else lambda: None)


__all__ = ["TRACE_EXAMPLES", "open_tracer", "trace_options"]
