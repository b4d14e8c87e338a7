"""From one call's events to the numbers every renderer shows.

Rules:
- Offsets are cumulative from the call's start, like curl's ``time_*``: ``connect_ns``
  includes the name lookup, ``appconnect_ns`` the TCP handshake, and so on. A step that did
  not happen is ``None`` (renderers omit it; the write-out prints 0 like curl).
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

from .events import Step, TraceEvent


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
class Phase:
    """One column of the timeline: ``name`` took ``duration_ns`` and ended at ``end_ns``."""

    name: str
    duration_ns: int
    end_ns: int  # cumulative, from the call's start


@dataclass(frozen=True)
class Summary:
    """One call's timings (cumulative ns from ``start_ns``) and identities."""

    conn: int
    kind: str  # "tcp", "tls", "unix", "fifo", "fd" or "" when unknown
    start_ns: int
    namelookup_ns: int | None
    connect_ns: int | None
    appconnect_ns: int | None
    pretransfer_ns: int | None
    starttransfer_ns: int | None
    total_ns: int
    local: Endpoint | None
    remote: Endpoint | None
    host: str | None = None  # the name looked up
    resolver: str | None = None  # "system resolver" or the DNS server, e.g. "udp 127.0.0.1:53"
    reused: bool = False
    closed_by: str | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    error: str | None = None
    discover_ns: int | None = None  # a call by name: the registry lookup ended
    service: str | None = None  # the service name looked up
    discovered: Mapping[str, Any] | None = None  # the last discover event's detail

    @property
    def connect_label(self) -> str:
        return {"tcp": "TCP Connection", "tls": "TCP Connection", "unix": "Unix Connect",
                "fifo": "FIFO Rendezvous", "fd": "Inherited Socket"}.get(self.kind, "Connect")

    def phases(self) -> list[Phase]:
        """The httpstat columns that apply, each with its own (not cumulative) duration."""
        phases: list[Phase] = []
        last = 0

        def add(name: str, at: int | None) -> None:
            nonlocal last
            if at is not None:
                phases.append(Phase(name, max(0, at - last), at))
                last = max(last, at)

        add("Discover", self.discover_ns)
        add("DNS Lookup", self.namelookup_ns)
        add(self.connect_label, self.connect_ns)
        add("TLS Handshake", self.appconnect_ns)
        if self.starttransfer_ns is not None:
            # httpstat: server processing runs from pretransfer to the first byte
            if self.pretransfer_ns is not None:
                last = max(last, self.pretransfer_ns)
            add("Server Processing", self.starttransfer_ns)
        add("Content Transfer", self.total_ns)
        return phases

    def to_dict(self) -> dict[str, Any]:
        """Seconds, like curl's write-out variables, plus identities (JSON-ready)."""
        def secs(ns: int | None) -> float | None:
            return None if ns is None else round(ns / 1e9, 9)

        return {
            "conn": self.conn, "kind": self.kind,
            "local": self.local.text if self.local else None,
            "remote": self.remote.text if self.remote else None,
            "host": self.host, "resolver": self.resolver,
            "service": self.service, "discover": dict(self.discovered or {}) or None,
            "time_discover": secs(self.discover_ns),
            "time_namelookup": secs(self.namelookup_ns),
            "time_connect": secs(self.connect_ns),
            "time_appconnect": secs(self.appconnect_ns),
            "time_pretransfer": secs(self.pretransfer_ns),
            "time_starttransfer": secs(self.starttransfer_ns),
            "time_total": secs(self.total_ns),
            "reused": self.reused, "closed_by": self.closed_by,
            "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
            "error": self.error,
            "phases": [{"name": p.name, "duration_ns": p.duration_ns} for p in self.phases()],
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
        return Summary(conn or 0, "", 0, None, None, None, None, None, 0, endpoint(local),
                       endpoint(remote))
    t0 = min(e.start_ns for e in call)

    def at(event: TraceEvent | None) -> int | None:
        return None if event is None else event.end_ns - t0

    discovers = [e for e in call if e.step is Step.DISCOVER]
    resolve = _first(call, Step.RESOLVE)
    connect = _first(call, Step.CONNECT)
    tls = _first(call, Step.TLS)
    request = _first(call, Step.REQUEST_HEADERS)
    send = _first(call, Step.SEND)
    first_byte = _first(call, Step.FIRST_BYTE) or next(
        (e for e in call if e.step is Step.RECEIVE and e.detail.get("bytes", 1)), None)
    done = _first(call, Step.RESPONSE_DONE)
    close = _first(call, Step.CLOSE)

    # curl's pretransfer: the request is about to go out. Headers-sent is the closest event
    # (its start may be the request's start, before the connection was even picked).
    pretransfer = at(request) if request else at(send)
    total = (done.end_ns if done else max(e.end_ns for e in call)) - t0
    if resolve is not None:
        resolver = resolve.detail.get("server") or "system resolver"
        host = resolve.detail.get("host")
    else:
        resolver = host = None
    detail_local = connect.detail.get("local") if connect else None
    detail_peer = connect.detail.get("peer") if connect else None
    errors = [str(e.detail["error"]) for e in call  # a failed-over candidate is no error
              if e.detail.get("error") and e.step is not Step.DISCOVER]
    return Summary(
        conn=call[0].conn, kind=_kind(call), start_ns=t0,
        namelookup_ns=at(resolve), connect_ns=at(connect), appconnect_ns=at(tls),
        pretransfer_ns=pretransfer, starttransfer_ns=at(first_byte), total_ns=total,
        local=endpoint(local) or endpoint(detail_local),
        remote=endpoint(remote) or endpoint(detail_peer),
        host=host, resolver=resolver, reused=_first(call, Step.REUSE) is not None,
        closed_by=close.detail.get("by") if close else None,
        bytes_sent=sum(int(e.detail.get("bytes", 0)) for e in call if e.step is Step.SEND),
        bytes_received=sum(int(e.detail.get("bytes", 0)) for e in call
                           if e.step is Step.RECEIVE),
        error=errors[0] if errors else None,
        discover_ns=at(discovers[-1]) if discovers else None,
        service=discovers[0].detail.get("service") if discovers else None,
        discovered=discovers[-1].detail if discovers else None)


def merge(client: Iterable[TraceEvent], server: Iterable[TraceEvent],
          trace_id: str | None = None) -> list[TraceEvent]:
    """Client events plus the server events of the same call, in time order.

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
    return sorted([e for e in client if e.side == "client"] + chosen,
                  key=lambda e: (e.end_ns, e.start_ns))
