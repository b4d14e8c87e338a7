"""The tour's trace leg: one traced HTTP request per transport, both sides, drawn.

It starts the demo users API on trunkline's HTTP server, traced, on TCP loopback, a Unix
socket path, an abstract Unix name and a FIFO; sends one ``GET /users`` over each with a
traced client (a fresh connection, so the connect step shows; over TCP to ``localhost``, so
the name's lookup shows too); merges the server's events of that request (matched by the
trace id the client sends) with the client's, in causal order; and keeps, per transport, an
httpstat-like timeline (shown in the leg's notes) and a Mermaid diagram. The TCP diagram
tells the whole story: the name resolved, the socket created, the handshake, the request
sent, the server parsing it and calling the app, the 200 back, the close (FIN); each arrow
says how long its step took.

The diagrams go to ``trace_dir`` (``<transport>.mmd`` each, plus ``trace.html`` drawing them
all, offline): by default a new directory under the user's runtime dir
(``$XDG_RUNTIME_DIR/trunkline/``, else ``/tmp/trunkline-<uid>/``), where only the
``KEEP_DEFAULT_DIRS`` newest such directories are kept (each page carries the 3.5 MB mermaid
library); ``--trace-dir`` keeps them anywhere for good. ``written_dir`` says where they went;
``trunkline tour`` names it at the end.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..address import Address, SocketIdentity
from ..trace import Step, TraceEvent, Tracer, format_duration
from ..trace.html import MERMAID_VERSION, mermaid_js
from ..trace.mermaid import render_mermaid
from ..trace.summary import merge, parse_endpoint
from ..trace.timeline import render_timeline
from .legs import Leg, TourContext, register_leg
from .model import LegResult

__all__ = ["TraceLeg", "TracedRequest", "new_trace_path", "trace_base_dir"]

#: Default tour trace directories kept under ``trace_base_dir()`` (older ones are removed).
KEEP_DEFAULT_DIRS = 5


def trace_base_dir() -> Path:
    """Where traces go unless told: the user's runtime dir, private to the user."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        base = Path(runtime) / "trunkline"
    else:
        base = Path(tempfile.gettempdir()) / f"trunkline-{os.getuid()}"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    return base


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def new_trace_path(what: str, suffix: str) -> str:
    """A new file name for a trace, e.g. ``…/trunkline/call-20260101-120000-ab12.html``."""
    fd, path = tempfile.mkstemp(prefix=f"{what}-{_stamp()}-", suffix=suffix,
                                dir=trace_base_dir())
    os.close(fd)
    return path


@dataclass
class TracedRequest:
    """One transport's traced request."""

    name: str  # "tcp", "unix", "abstract", "fifo"
    title: str
    url: str
    status: int
    events: list[TraceEvent]  # client and server, time order
    timeline: str
    mermaid: str
    mmd_path: Path | None = None


@dataclass
class _Closes:
    """A server-tracer sink: wakes whoever waits for a connection's CLOSE."""

    closed: dict[int, asyncio.Event] = field(default_factory=dict)

    def __call__(self, event: TraceEvent) -> None:
        if event.step is Step.CLOSE:
            self.event(event.conn).set()

    def event(self, conn: int) -> asyncio.Event:
        return self.closed.setdefault(conn, asyncio.Event())


class TraceLeg(Leg):
    """One traced ``GET /users`` per stream transport; see the module docstring."""

    name = "trace"
    title = "Traced HTTP request per transport"
    kind = "http"

    def __init__(self, trace_dir: Path | None = None) -> None:
        self.trace_dir = trace_dir  # None: a new dir under trace_base_dir()
        self.requests: list[TracedRequest] = []
        self.written_dir: Path | None = None
        self.page: Path | None = None

    async def run(self, ctx: TourContext, bound: list[Address]) -> LegResult:
        from ..apps.demo import demo_app
        from ..client import Client
        from ..server import AppServer, ServerConfig
        from ..transport import ListenOptions

        result = self.new_result()
        abstract = f"trunkline-tour-http-{os.getpid()}-{ctx.token}"
        ctx.abstract_names.append(abstract)
        unix_path, fifo_path = ctx.tmpdir / "http.sock", ctx.tmpdir / "http.fifo"
        closes = _Closes()
        server_tracer = Tracer(closes)
        config = ServerConfig(access_log=False, listen=ListenOptions(
            allow_uids=frozenset({os.getuid()})))
        ctx.progress(f"{self.title}: starting the demo API")
        server = AppServer(demo_app(), "tcp://127.0.0.1:0", f"unix://{unix_path}",
                           f"unix:@{abstract}", f"fifo://{fifo_path}", config=config,
                           tracer=server_tracer)
        await server.start()
        ctx.stack.push_async_callback(server.shutdown, 2.0)
        result.server_url = ", ".join(server.urls)
        port = server.urls[0].rsplit(":", 1)[1]
        targets = [
            # a name, so the story starts with its lookup (the system resolver: hosts file)
            ("tcp", "TCP loopback", f"http://localhost:{port}/users"),
            ("unix", "Unix socket (path)",
             f"http+unix://{quote(str(unix_path), safe='')}/users"),
            ("abstract", "Unix socket (abstract)",
             f"http+unix://{quote('@' + abstract, safe='')}/users"),
            ("fifo", "FIFO pair", f"http+fifo://{quote(str(fifo_path), safe='')}/users"),
        ]
        result.client_url = targets[0][2]
        for name, title, url in targets:
            ctx.progress(f"{self.title}: GET {url}")
            tracer = Tracer()
            async with asyncio.timeout(ctx.timeout):
                async with Client(tracer=tracer, timeout=ctx.timeout) as client:
                    response = await client.get(url)
                # the server writes its last events (CLOSE) once it sees our close
                conns = {e.conn for e in server_tracer.events
                         if e.detail.get("trace_id") == tracer.trace_id}
                for conn in conns:
                    await closes.event(conn).wait()
            events = merge(tracer.events, server_tracer.events, tracer.trace_id)
            self.requests.append(TracedRequest(
                name, title, url, response.status_code, events,
                render_timeline(events), render_mermaid(events, title=f"{title}: GET /users")))
        self._take_identities(result)
        self._write()
        for request in self.requests:
            where = f", {request.mmd_path.name}" if request.mmd_path else ""
            result.notes.append(f"\n{request.title}: GET /users {request.status}, "
                                f"{len(request.events)} events on both sides{where}")
            result.notes.append(request.timeline.rstrip("\n"))
            result.notes.append(server_line(request.events))
        result.notes.append(f"\nMermaid diagrams and an HTML page in {self.written_dir}")
        return result

    def _take_identities(self, result: LegResult) -> None:
        """The TCP request's socket identities, as the events named them."""
        events = self.requests[0].events
        connect = next((e for e in events if e.side == "client" and e.step is Step.CONNECT),
                       None)
        accept = next((e for e in events if e.side == "server" and e.step is Step.ACCEPT),
                      None)
        if connect is not None:
            result.client_local = _identity(connect.detail.get("local"))
            result.client_peer = _identity(connect.detail.get("peer"))
        if accept is not None:
            result.server_local = _identity(accept.detail.get("local"))
            result.server_peer = _identity(accept.detail.get("peer"))

    def _write(self) -> None:
        directory = self.trace_dir
        if directory is None:
            base = trace_base_dir()
            directory = Path(tempfile.mkdtemp(prefix=f"tour-{_stamp()}-", dir=base))
            _prune(base, keep=directory)
        directory.mkdir(parents=True, exist_ok=True)
        for request in self.requests:
            request.mmd_path = directory / f"{request.name}.mmd"
            request.mmd_path.write_text(request.mermaid, encoding="utf-8")
        self.page = directory / "trace.html"
        self.page.write_text(render_page(self.requests), encoding="utf-8")
        self.written_dir = directory


_SERVER_LABELS = {Step.REQUEST_HEADERS: "head", Step.APP_CALL: "app",
                  Step.RESPONSE_DONE: "response"}


def server_line(events: list[TraceEvent]) -> str:
    """The server's side of one request in a line: what took how long there."""
    parts = [f"{label} {format_duration(e.duration_ns)}" for step, label in
             _SERVER_LABELS.items() for e in events if e.side == "server" and e.step is step]
    trace_id = next((str(e.detail["trace_id"]) for e in events
                     if e.side == "server" and "trace_id" in e.detail), "?")
    return f"server (trace {trace_id[:8]}…): " + ", ".join(parts)


def _prune(base: Path, keep: Path) -> None:
    """Remove all but the newest ``KEEP_DEFAULT_DIRS`` default tour trace directories."""
    found = sorted((p for p in base.glob("tour-*") if p.is_dir() and p != keep),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    for old in found[KEEP_DEFAULT_DIRS - 1:]:
        shutil.rmtree(old, ignore_errors=True)


def _identity(text: object) -> SocketIdentity | None:
    endpoint = parse_endpoint(str(text)) if text else None
    if endpoint is None or not endpoint.port:
        return None
    return SocketIdentity(endpoint.ip, endpoint.port, "tcp")


def _script(js: str) -> str:
    # As trace.html does: inline unless the code could end the element early.
    if re.search(r"</?script", js, re.IGNORECASE):
        import base64

        data = base64.b64encode(js.encode("utf-8")).decode("ascii")
        return f'<script src="data:text/javascript;base64,{data}"></script>'
    return f"<script>\n{js}\n</script>"


def render_page(requests: list[TracedRequest]) -> str:
    """One offline page with every transport's diagram and timeline."""
    sections = "\n".join(
        f'<h2>{html.escape(r.title)}: GET {html.escape(r.url)} ({r.status})</h2>\n'
        f'<pre class="mermaid">\n{html.escape(r.mermaid)}</pre>\n'
        f'<pre class="timeline">{html.escape(r.timeline)}</pre>' for r in requests)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>trunkline tour: traced requests</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
pre.timeline {{ background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 0.85em; }}
</style>
</head>
<body>
<h1>trunkline tour: one traced request per transport</h1>
{sections}
<!-- mermaid {MERMAID_VERSION} (MIT license, see trunkline/trace/vendor/LICENSE) -->
{_script(mermaid_js())}
<script>
mermaid.initialize({{ startOnLoad: false, securityLevel: "strict",
                     sequence: {{ showSequenceNumbers: true }} }});
mermaid.run({{ querySelector: "pre.mermaid" }})
  .then(() => document.body.setAttribute("data-rendered", "ok"))
  .catch((err) => document.body.setAttribute("data-rendered", "error: " + err));
</script>
</body>
</html>
"""


register_leg(TraceLeg)
