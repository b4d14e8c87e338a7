"""From one call's events to the numbers every renderer shows.

Rules:
- Every figure is defined once, in ``figures`` (curl's ``time_*`` names and ours, the byte
  counts); a ``Summary`` holds their values for one call.
- A call is the client-side events of one connection. ``merge`` adds the server's events of
  the same call, matched by trace id or by the connection's endpoints.
- Identities come from the events' details (CONNECT's ``local``/``peer``, ACCEPT's ``peer``)
  unless the caller passes them; anything with ``ip``/``port`` or ``path`` attributes (or a
  string) will do, so this layer needs nothing from the rest of trunkline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .causal import causal_order
from .events import Step, TraceEvent
from .figures import FIGURE_NAMES, Phase, count_values, figure_values, phases


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection as renderers show it, plus curl's ip/port view of it."""

    text: str  # "127.0.0.1:40000", "[::1]:8000", "/run/app.sock", "@app", "fd 3"
    ip: str = ""  # curl's remote_ip: the IP, or the socket path for Unix sockets
    port: int = 0


def endpoint(value: Any) -> Endpoint | None:
    """An ``Endpoint`` from an identity object, an ``Endpoint`` or a text form."""
    if value is None or isinstance(value, Endpoint):
        return value
    ip, port = getattr(value, "ip", None), getattr(value, "port", None)
    if isinstance(ip, str) and isinstance(port, int):
        return _ip_endpoint(ip, port)
    path = getattr(value, "path", None)
    if isinstance(path, str):
        if not path:
            return None  # an unnamed Unix socket has no identity worth showing
        name = f"@{path}" if getattr(value, "abstract", False) else path
        return Endpoint(name, name)
    return parse_endpoint(str(value))


def parse_endpoint(text: str) -> Endpoint | None:
    """``"127.0.0.1:5"``, ``"::1:5"``, ``"tcp [::1]:5"``, ``"unix /p"``, ``"unix:///p"``,
    ``"unix:@n"``, ``"/p"``... to an ``Endpoint``; None for unknown or unnamed ends."""
    text = text.strip()
    if not text or text == "?" or text.endswith("(unnamed)"):
        return None
    for prefix in ("tcp ", "udp ", "tls ", "unix ", "unixgram ", "fifo "):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    for scheme in ("unix://", "unixgram://", "fifo://", "unix:", "unixgram:", "fifo:"):
        if text.startswith(scheme):
            path = text[len(scheme):]
            return Endpoint(path, path)
    if text.startswith(("/", "@", ".")) or ":" not in text:
        return Endpoint(text, text)
    host, _, port_text = text.rpartition(":")
    if not port_text.isdigit():
        return Endpoint(text, text)
    return _ip_endpoint(host.strip("[]"), int(port_text))


def _ip_endpoint(ip: str, port: int) -> Endpoint:
    shown = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    return Endpoint(shown, ip, port)


@dataclass(frozen=True)
class Summary:
    """One call's figures (``trunkline.trace.figures``: times in ns from ``start_ns``,
    counts from the events) and identities."""

    conn: int
    kind: str  # "tcp", "tls", "unix", "fifo", "fd" or "" when unknown
    start_ns: int
    figures: dict[str, int | None]  # FIGURES' names -> ns from start_ns (None: no such step)
    counts: dict[str, int]  # COUNTS' names -> sums
    local: Endpoint | None
    remote: Endpoint | None
    host: str | None = None  # the name looked up
    resolver: str | None = None  # "system resolver" or the DNS server, e.g. "udp 127.0.0.1:53"
    reused: bool = False
    closed_by: str | None = None
    error: str | None = None
    discovered: Mapping[str, Any] | None = None  # a call by name: its discover step's detail

    # the figures by their curl names, for code that reads one
    @property
    def namelookup_ns(self) -> int | None:
        return self.figures.get("time_namelookup")

    @property
    def connect_ns(self) -> int | None:
        return self.figures.get("time_connect")

    @property
    def appconnect_ns(self) -> int | None:
        return self.figures.get("time_appconnect")

    @property
    def pretransfer_ns(self) -> int | None:
        return self.figures.get("time_pretransfer")

    @property
    def starttransfer_ns(self) -> int | None:
        return self.figures.get("time_starttransfer")

    @property
    def total_ns(self) -> int:
        return self.figures.get("time_total") or 0

    @property
    def bytes_sent(self) -> int:
        return self.counts.get("bytes_sent", 0)

    @property
    def bytes_received(self) -> int:
        return self.counts.get("bytes_received", 0)

    @property
    def connect_label(self) -> str:
        return {"tcp": "TCP Connection", "tls": "TCP Connection", "unix": "Unix Connect",
                "fifo": "FIFO Rendezvous", "fd": "Inherited Socket"}.get(self.kind, "Connect")

    def phases(self) -> list[Phase]:
        """The timeline's columns, each with its own duration; they sum to the total."""
        return phases(self.figures, self.connect_label)

    def to_dict(self) -> dict[str, Any]:
        """Seconds, like curl's write-out variables, plus counts and identities."""
        def secs(ns: int | None) -> float | None:
            return None if ns is None else round(ns / 1e9, 9)

        return {
            "conn": self.conn, "kind": self.kind,
            "local": self.local.text if self.local else None,
            "remote": self.remote.text if self.remote else None,
            "host": self.host, "resolver": self.resolver,
            **{name: secs(self.figures.get(name)) for name in FIGURE_NAMES},
            "reused": self.reused, "closed_by": self.closed_by,
            **self.counts,
            "error": self.error,
            "service": self.discovered.get("service") if self.discovered else None,
            "discover": dict(self.discovered) if self.discovered else None,
            "phases": [{"name": p.name, "duration_ns": p.duration_ns, "ends_at": p.figure}
                       for p in self.phases()],
        }


def client_events(events: Iterable[TraceEvent], conn: int | None = None) -> list[TraceEvent]:
    """The client side of one call: connection ``conn``, or the first one seen. A call by
    name's ``discover`` step may come before its connection has a number (conn 0): it
    belongs to the call that follows."""
    mine = [e for e in events if e.side == "client"]
    if conn is None and mine:
        conn = next((e.conn for e in mine if e.step is not Step.DISCOVER), mine[0].conn)
    return [e for e in mine if e.conn == conn or (e.step is Step.DISCOVER and e.conn == 0)]


def _first(events: Sequence[TraceEvent], *steps: Step) -> TraceEvent | None:
    return next((e for e in events if e.step in steps), None)


def _kind(events: Sequence[TraceEvent]) -> str:
    for event in events:
        if "kind" in event.detail:
            return str(event.detail["kind"])
    if _first(events, Step.TLS) is not None:
        return "tls"
    connect = _first(events, Step.CONNECT)
    how = str(connect.detail.get("how", "")).lower() if connect else ""
    for word, kind in (("fifo", "fifo"), ("unix", "unix"), ("tcp", "tcp"),
                       ("inherited", "fd"), ("fd", "fd")):
        if word in how:
            return kind
    socket = _first(events, Step.SOCKET)
    family = socket.detail.get("family") if socket else None
    if family == "unix":
        return "unix"
    if family in ("ipv4", "ipv6"):
        return "tcp"
    return ""


def summarize(events: Iterable[TraceEvent], *, conn: int | None = None, local: Any = None,
              remote: Any = None) -> Summary:
    """Timings and identities of one call (client side of connection ``conn``)."""
    call = sorted(client_events(events, conn), key=lambda e: (e.start_ns, e.end_ns))
    if not call:
        return Summary(conn or 0, "", 0, figure_values([]), count_values([]), endpoint(local),
                       endpoint(remote))
    resolve = _first(call, Step.RESOLVE)
    connect = _first(call, Step.CONNECT)
    close = _first(call, Step.CLOSE)
    if resolve is not None:
        resolver = resolve.detail.get("server") or "system resolver"
        host = resolve.detail.get("host")
    else:
        resolver = host = None
    detail_local = connect.detail.get("local") if connect else None
    detail_peer = connect.detail.get("peer") if connect else None
    errors = [str(e.detail["error"]) for e in call  # a failed-over candidate is no error
              if e.detail.get("error") and e.step is not Step.DISCOVER]
    discovers = [e for e in call if e.step is Step.DISCOVER]
    return Summary(
        conn=next((e.conn for e in call if e.step is not Step.DISCOVER), call[0].conn),
        kind=_kind(call), start_ns=min(e.start_ns for e in call),
        figures=figure_values(call), counts=count_values(call),
        local=endpoint(local) or endpoint(detail_local),
        remote=endpoint(remote) or endpoint(detail_peer),
        host=host, resolver=resolver, reused=_first(call, Step.REUSE) is not None,
        closed_by=close.detail.get("by") if close else None,
        error=errors[0] if errors else None,
        discovered=discovers[-1].detail if discovers else None)


def merge(client: Iterable[TraceEvent], server: Iterable[TraceEvent],
          trace_id: str | None = None) -> list[TraceEvent]:
    """Client events plus the server events of the same call, in time order with every
    effect after its cause (``causal.causal_order``).

    A server connection belongs to the call when one of its events carries ``trace_id`` in
    its detail, or when its ACCEPT ``peer`` is the client's CONNECT ``local`` endpoint. With
    no ``trace_id`` and no endpoint match, all server events are taken (the caller chose
    them). Both sides must share a clock: ``time.monotonic_ns`` is one per host.
    """
    client = list(client)
    server = [e for e in server if e.side == "server"]
    locals_ = {ep.text for e in client if e.step is Step.CONNECT
               if (ep := endpoint(e.detail.get("local"))) is not None}
    wanted: set[int] = set()
    for event in server:
        if trace_id is not None and event.detail.get("trace_id") == trace_id:
            wanted.add(event.conn)
        elif event.step is Step.ACCEPT:
            peer = endpoint(event.detail.get("peer"))
            if peer is not None and peer.text in locals_:
                wanted.add(event.conn)
    take_all = not wanted and trace_id is None
    chosen = server if take_all else [e for e in server if e.conn in wanted]
    return causal_order([e for e in client if e.side == "client"] + chosen)
