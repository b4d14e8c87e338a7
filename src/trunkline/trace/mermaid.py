"""``--trace=mermaid``: a call as a Mermaid ``sequenceDiagram``, one numbered arrow per step.

Participants: Application, Registry (only for a call by name), OS/Networking, DNS (only when
a DNS server was asked) and Server.
Each arrow is labelled with its step and the time that step took, written as a duration,
e.g. ``TCP handshake (SYN/SYN-ACK/ACK) +0.08 ms`` (never a time since the call began: the
timeline shows those). Server-side events, when given (``merge``), are drawn among the
client's in causal order (``causal.causal_order``: the server accepts after the client
connects, parses after the request went out, and so on), so the diagram tells the call's
story and shows where the server spent its part. A closing note gives the call's figures
(``trace.figures``), the times since the start, apart from the arrows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .causal import causal_order
from .events import Step, TraceEvent, format_duration
from .figures import FIGURES
from .summary import endpoint, summarize

APP, OS, DNS, SERVER, REGISTRY = "App", "OS", "DNS", "Server", "Registry"

# (from, to, arrow, label) per client step; arrows: ->> request-ish, -->> reply-ish.
_CLIENT: dict[Step, tuple[str, str, str, str]] = {
    Step.DISCOVER: (APP, REGISTRY, "->>", "discover"),
    Step.SOCKET: (APP, OS, "->>", "socket created"),
    Step.RESOLVE: (APP, OS, "->>", "DNS lookup"),
    Step.CONNECT: (OS, SERVER, "->>", "connect"),
    Step.TLS: (APP, SERVER, "->>", "TLS handshake"),
    Step.REQUEST_HEADERS: (APP, SERVER, "->>", "request headers sent"),
    Step.REQUEST_BODY: (APP, SERVER, "->>", "request body sent"),
    Step.FIRST_BYTE: (SERVER, APP, "-->>", "first response byte"),
    Step.RESPONSE_DONE: (SERVER, APP, "-->>", "response complete"),
    Step.REUSE: (APP, OS, "->>", "pooled connection reused"),
    Step.RELEASE: (APP, OS, "->>", "connection returned to the pool"),
    Step.SEND: (APP, SERVER, "->>", "send"),
    Step.RECEIVE: (SERVER, APP, "-->>", "receive"),
    Step.UPGRADE: (SERVER, APP, "-->>", "WebSocket upgrade"),
    Step.CLOSE: (APP, SERVER, "->>", "close"),
}

_SERVER: dict[Step, tuple[str, str, str, str]] = {
    Step.ACCEPT: (OS, SERVER, "->>", "server: accepted"),
    Step.TLS: (SERVER, SERVER, "->>", "server: TLS handshake"),
    Step.REQUEST_HEADERS: (SERVER, SERVER, "->>", "server: request head parsed"),
    Step.REQUEST_BODY: (SERVER, SERVER, "->>", "server: request body received"),
    Step.APP_CALL: (SERVER, SERVER, "->>", "server: app called"),  # drawn where it began
    Step.RESPONSE_START: (SERVER, APP, "-->>", "server: response started"),
    Step.RESPONSE_DONE: (SERVER, APP, "-->>", "server: response complete"),
    Step.UPGRADE: (SERVER, APP, "-->>", "server: WebSocket upgrade"),
    Step.SEND: (SERVER, APP, "-->>", "server: send"),
    Step.RECEIVE: (SERVER, SERVER, "->>", "server: receive"),
    Step.CLOSE: (SERVER, APP, "-->>", "close"),
}

_CONNECT_LABELS = {"tcp": "TCP handshake (SYN/SYN-ACK/ACK)", "tls": "TCP handshake "
                   "(SYN/SYN-ACK/ACK)", "unix": "Unix socket connect",
                   "fifo": "FIFO rendezvous", "fd": "inherited socket"}


_ESCAPES = str.maketrans({"#": "#35;", ";": "#59;", "\n": " ", "\r": " "})


def escape(text: str) -> str:
    """Mermaid message text: '#' and ';' are syntax there, so they become entity codes."""
    return text.translate(_ESCAPES)


def took(ns: int) -> str:
    """A step's duration as the diagrams write it: ``+0.21 ms``."""
    return f"+{format_duration(ns)}"


def arrow(event: TraceEvent, kind: str = "") -> tuple[str, str, str, str]:
    """(from, to, arrow, label) for one event; the label ends with the step's duration."""
    table = _SERVER if event.side == "server" else _CLIENT
    src, dst, line, label = table.get(event.step, (APP, SERVER, "->>", event.step.value))
    d = event.detail
    if event.step is Step.DISCOVER:
        label = (f"discover {d.get('service')}: {d.get('instances')} instance(s)"
                 f"{' (cached)' if d.get('cached') else ''}"
                 f"{' (stale)' if d.get('stale') else ''}")
        if d.get("failed"):
            label = f"{d['failed']} failed, next: " + label
        label += f" -> {d.get('chosen')} ({d.get('reason')})"
    elif event.step is Step.RESOLVE:
        host = d.get("host", "?")
        if d.get("server"):  # the DNS participant is named after the server
            src, dst = APP, DNS
            label = f"DNS query A/AAAA {host}"
        else:
            label = f"DNS lookup {host} (system resolver)"
        if d.get("error"):
            label += " failed"
        elif d.get("addresses"):
            label += " -> " + ", ".join(str(a) for a in d["addresses"])
    elif event.step is Step.SOCKET:
        what = ", ".join(str(d[k]) for k in ("protocol", "family") if d.get(k))
        label = f"socket created ({what})" if what else label
    elif event.step is Step.CONNECT:
        label = str(d.get("how") or _CONNECT_LABELS.get(kind, "connect"))
    elif event.step is Step.TLS and d.get("version"):
        label += f" ({d['version']})"
    elif event.step in (Step.SEND, Step.RECEIVE) and "bytes" in d:
        label += f" {d['bytes']} B"
    elif event.step is Step.ACCEPT and d.get("peer"):
        peer = endpoint(d["peer"])
        label += f" from {peer.text if peer else 'an unnamed peer'}"
    elif event.step is Step.CLOSE:
        by = d.get("by") or event.side
        fin = "FIN, " if kind in ("tcp", "tls") else ""
        label = ("server: " if event.side == "server" else "") + f"close ({fin}by {by})"
        if by == "server":
            src, dst, line = SERVER, APP, "-->>"
        else:
            src, dst, line = APP, SERVER, "->>"
    if event.step is Step.RESPONSE_DONE and d.get("status"):
        label += f" ({d['status']})"
    if event.step is Step.APP_CALL:  # drawn where it began; it ran this long
        return src, dst, line, f"{label}, returned {took(event.duration_ns)} later"
    return src, dst, line, f"{label} {took(event.duration_ns)}"


def render_mermaid(events: Iterable[TraceEvent], *, conn: int | None = None,
                   local: Any = None, remote: Any = None, title: str | None = None) -> str:
    """A ``sequenceDiagram`` of the events: client events of one connection (``conn``, or
    the first) plus any server events given (see ``merge``), one numbered arrow each."""
    events = list(events)
    summary = summarize(events, conn=conn, local=local, remote=remote)
    chosen = causal_order(e for e in events if e.side == "server" or e.conn == summary.conn
                          or (e.step is Step.DISCOVER and e.conn == 0))  # a name looked up first
    has_dns = any(e.step is Step.RESOLVE and e.detail.get("server") for e in chosen)

    lines = ["sequenceDiagram"]
    if title:
        lines.append(f"    title {escape(title)}")
    lines.append("    autonumber")
    app_label = "Application"
    if summary.local is not None:
        app_label += f" {summary.local.text}"
    server_label = "Server"
    if summary.remote is not None:
        server_label += f" {summary.remote.text}"
    lines.append(f"    participant {APP} as {escape(app_label)}")
    discover = next((e for e in chosen if e.step is Step.DISCOVER), None)
    if discover is not None:
        lines.append(f"    participant {REGISTRY} as "
                     f"{escape('Registry ' + str(discover.detail.get('backend')))}")
    lines.append(f"    participant {OS} as OS/Networking")
    if has_dns:
        dns = next(str(e.detail["server"]) for e in chosen
                   if e.step is Step.RESOLVE and e.detail.get("server"))
        lines.append(f"    participant {DNS} as {escape(f'DNS {dns}')}")
    lines.append(f"    participant {SERVER} as {escape(server_label)}")
    for event in chosen:
        src, dst, line, label = arrow(event, summary.kind)
        lines.append(f"    {src}{line}{dst}: {escape(label)}")
    figures = figures_note(summary.figures)
    if figures and chosen:
        lines.append(f"    Note over {APP},{SERVER}: {escape(figures)}")
    return "\n".join(lines) + "\n"


def figures_note(values: dict[str, int | None]) -> str:
    """The call's figures (``trace.figures``), cumulative, in one line set apart from the
    arrows: ``since the start: connect 0.21 ms, pretransfer 0.25 ms, ..., total 1.02 ms``."""
    shown = [f"{f.tick} {format_duration(ns)}" for f in FIGURES
             if (ns := values.get(f.name)) is not None]
    return f"since the start: {', '.join(shown)}" if shown else ""
