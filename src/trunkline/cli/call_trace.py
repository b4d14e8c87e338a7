"""``trunkline call`` tracing switches: ``--trace[=FORMAT]``, ``--trace-file``, ``-w``,
``--dns`` and ``--server-trace``, around ``call.perform`` (which only takes a tracer).

Rules:
- The body stays on stdout; a trace goes to stderr (like curl -v) or to ``--trace-file``.
  ``-w`` output goes to stdout after the body, as curl's does, even when the call failed.
- ``--trace=html`` always writes a file (``--trace-file PATH``, ``--trace=html:PATH``, or a
  new file under the user's runtime dir) and says where on stderr.
- ``--server-trace FILE`` reads a trunkline server's JSON lines trace (``trunkline serve
  --trace-file FILE``) and merges the server's side of this call, matched by trace id; both
  must run on one host (one monotonic clock).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import click

from ..address import Address, TcpAddress, parse_address, parse_http_url
from ..errors import AddressError, ResolveError
from ..resolve import parse_dns_server
from ..tour.trace_leg import new_trace_path
from ..trace import Step, TraceEvent, Tracer, describe_event
from ..trace.render import RENDERERS, render
from ..trace.summary import merge, summarize
from ..trace.timeline import render_json
from ..trace.writeout import ResponseFacts, load_format, write_out

FORMATS = tuple(RENDERERS)  # text, json, mermaid, html
#: How long to wait for a server's trace file to show this call's last events.
SERVER_TRACE_WAIT = 2.0

TRACE_HELP = """\b
Tracing (the body stays on stdout; traces go to stderr or --trace-file):
  trunkline call http://127.0.0.1:8000/ --trace              httpstat-like timeline
  trunkline call http://127.0.0.1:8000/ --trace=json         every event, plus a summary
  trunkline call http://127.0.0.1:8000/ --trace=mermaid      Mermaid sequenceDiagram
  trunkline call http://127.0.0.1:8000/ --trace=html:t.html  self-contained page
  trunkline call http://api.test:8000/ --dns 127.0.0.1:5353 --trace   DNS over UDP, timed
  trunkline call http://127.0.0.1:8000/ -w '%{time_connect} %{http_code}\\n'   curl's -w
  trunkline serve hello --on tcp://127.0.0.1:8000 --trace-file server.jsonl &
  trunkline call http://127.0.0.1:8000/ --trace=mermaid --server-trace server.jsonl
Write --trace=FORMAT (with '='); a bare --trace means text."""


@dataclass(frozen=True)
class TraceChoice:
    """What ``--trace``/``--trace-file`` asked for."""

    fmt: str
    path: str | None = None  # None: stderr (a new file for html)


def parse_trace(value: str | None, trace_file: str | None,
                args: tuple[str, ...]) -> tuple[TraceChoice | None, tuple[str, ...]]:
    """The trace choice, and ``args`` with a word ``--trace`` swallowed given back.

    ``--trace`` takes an optional value, so in ``call --trace GET URL`` click hands "GET" to
    ``--trace``; a method or URL there goes back to the arguments and the format is text."""
    if value is None:
        if trace_file is not None:
            return TraceChoice("text", trace_file), args
        return None, args
    fmt, path = value, trace_file
    if value.startswith("html:"):
        fmt, inline = "html", value[len("html:"):]
        if not inline:
            raise click.BadParameter("html:PATH needs a path, e.g. --trace=html:trace.html",
                                     param_hint="--trace")
        if path is not None and path != inline:
            raise click.BadParameter(f"two trace files given: {inline} and --trace-file "
                                     f"{path}", param_hint="--trace")
        path = inline
    elif value not in FORMATS:
        if "://" in value or "/" in value or (value.isalpha() and value.isupper()):
            return TraceChoice("text", trace_file), (value, *args)
        raise click.BadParameter(f"{value!r} is not a trace format; choose one of "
                                 f"{', '.join(FORMATS)} (or html:PATH)", param_hint="--trace")
    return TraceChoice(fmt, path), args


def check_dns(server: str | None) -> None:
    if server is not None:
        try:
            parse_dns_server(server)
        except ResolveError as exc:
            raise click.BadParameter(str(exc), param_hint="--dns") from None


def read_write_out(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    try:
        return load_format(fmt, sys.stdin)
    except OSError as exc:
        raise click.BadParameter(f"cannot read the format file {fmt[1:]}: "
                                 f"{exc.strerror or exc}", param_hint="-w") from None


# --------------------------------------------------------------------------- output


def facts(method: str, url: str, transport: str | None, response: object | None,
          exit_code: int, messages: Sequence[str], events: Sequence[TraceEvent],
          redirects: int = 0) -> ResponseFacts:
    """curl's view of the request and response, for ``-w``."""
    scheme, port = "http", 80
    where: Address | None = None
    try:
        target = parse_http_url(url)
        scheme = "https" if target.tls else "http"
        port = 443 if target.tls else 80
        if isinstance(target.transport, TcpAddress):
            port = target.transport.port
        where = target.transport
    except AddressError:
        pass
    if transport is not None:
        where = _address(transport)
    # curl shows the URL's port as remote_port when it talks to a Unix socket
    remote_port = None if isinstance(where, TcpAddress) else port
    if response is None:
        return ResponseFacts(url=url, method=method, scheme=scheme, remote_port=remote_port,
                             exitcode=exit_code, errormsg=messages[0] if messages else "",
                             num_connects=_connects(events))
    from ..client import Response

    assert isinstance(response, Response)
    body = sum(int(e.detail.get("bytes", 0)) for e in events
               if e.side == "client" and e.step is Step.REQUEST_BODY)
    return ResponseFacts(
        http_code=response.status_code, size_download=response.num_bytes,
        size_header=len(response.head_bytes), size_request=len(response.request_head),
        size_upload=body, url=url, method=method, scheme=scheme,
        content_type=response.headers.get("content-type") or "",
        http_version=response.http_version, remote_port=remote_port,
        headers=response.headers.items(), exitcode=exit_code,
        url_effective=response.url, num_redirects=redirects,
        errormsg=messages[0] if messages and exit_code else "",
        num_connects=_connects(events))


def _address(text: str) -> Address | None:
    try:
        return parse_address(text)
    except AddressError:
        return None


def _connects(events: Sequence[TraceEvent]) -> int:
    return sum(1 for e in events if e.side == "client" and e.step is Step.CONNECT)


def server_events(path: str, trace_id: str, since_ns: int,
                  wait: float = SERVER_TRACE_WAIT) -> list[TraceEvent]:
    """The server's events in ``path`` from ``since_ns`` on, once the connections that carried
    ``trace_id`` show their CLOSE (or ``wait`` seconds passed: the server writes its last
    lines a moment after the client is done)."""
    deadline = time.monotonic() + wait
    while True:
        events = _read_lines(path)
        mine = [e for e in events if e.side == "server" and e.end_ns >= since_ns]
        conns = {e.conn for e in mine if e.detail.get("trace_id") == trace_id}
        closed = {e.conn for e in mine if e.step is Step.CLOSE}
        if (conns and conns <= closed) or time.monotonic() >= deadline:
            return mine
        time.sleep(0.01)  # polling a file another process appends to


def _read_lines(path: str) -> list[TraceEvent]:
    events = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    events.append(TraceEvent.from_dict(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    continue  # a line being written, or not ours
    except FileNotFoundError:
        return []
    return events


def render_trace(choice: TraceChoice, events: Sequence[TraceEvent], tracer: Tracer,
                 title: str) -> str:
    if choice.fmt == "json":
        return render_json(events, trace_id=tracer.trace_id) + "\n"
    if choice.fmt == "html":
        return render(choice.fmt, events, title=title)
    text = render(choice.fmt, events)
    if choice.fmt == "text":
        server = [e for e in events if e.side == "server"]
        if server:
            text += f"\nserver side (trace id {tracer.trace_id}):\n"
            text += "".join(f"  {describe_event(e)}\n" for e in server)
    return text


def emit(choice: TraceChoice | None, wout: str | None, events: list[TraceEvent],
         tracer: Tracer, response_facts: ResponseFacts, title: str, *, silent: bool,
         stdout: IO[str], stderr: IO[str]) -> int:
    """Write the trace and the ``-w`` output; returns 23 (curl's write error) if the trace
    file could not be written, else 0."""
    if wout is not None:
        def unknown(name: str) -> None:
            if not silent:
                stderr.write(f"trunkline call: unknown --write-out variable: '{name}'\n")

        stdout.write(write_out(wout, events, response_facts, on_unknown=unknown))
        stdout.flush()
    if choice is None:
        return 0
    text = render_trace(choice, events, tracer, title)
    path = choice.path
    if path is None and choice.fmt == "html":
        path = new_trace_path("call", ".html")
    if path is None:
        stderr.write(text)
        stderr.flush()
        return 0
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        stderr.write(f"trunkline call: cannot write the trace to {path}: "
                     f"{exc.strerror or exc}\n")
        return 23
    if not silent:
        stderr.write(f"trunkline call: {choice.fmt} trace written to "
                     f"{os.path.abspath(path)}\n")
    return 0


def gather(tracer: Tracer, server_trace: str | None, stderr: IO[str] | None = None
           ) -> list[TraceEvent]:
    """The call's events: the client's, plus the server's from ``server_trace`` if given
    (``stderr`` hears when the file holds none of this call's)."""
    if server_trace is None:
        return list(tracer.events)
    start = summarize(tracer.events).start_ns or time.monotonic_ns()
    sent = any(e.step is Step.REQUEST_HEADERS for e in tracer.events)
    wait = SERVER_TRACE_WAIT if sent else 0.0  # no request went out: nothing to wait for
    events = merge(tracer.events, server_events(server_trace, tracer.trace_id, start, wait),
                   tracer.trace_id)
    if stderr is not None and not any(e.side == "server" for e in events):
        stderr.write(f"trunkline call: no server events of trace id {tracer.trace_id} in "
                     f"{server_trace}; is the server writing it (trunkline serve "
                     "--trace-file), on this host?\n")
    return events


__all__ = ["FORMATS", "TRACE_HELP", "TraceChoice", "check_dns", "emit", "facts", "gather",
           "parse_trace", "read_write_out", "server_events"]
