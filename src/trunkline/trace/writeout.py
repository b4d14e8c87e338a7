"""``-w/--write-out``: curl's format language over a call's events.

    write_out("%{time_connect} %{http_code}\\n", events, ResponseFacts(http_code=200))

Matches curl 7.88 byte for byte in syntax and value formatting:
- ``%{name}`` (case-insensitive), ``%header{Name}``, ``%%``; ``\\n``, ``\\r``, ``\\t``; any other
  backslash pair, an unterminated ``%{``/``%header{`` and a ``%`` before anything else are
  printed as written; unknown variables print nothing (``on_unknown`` hears their names,
  where curl warns on stderr).
- times are seconds with six decimals (``0.001234``), truncated to the microsecond; each
  ``time_*`` is defined once in ``trace.figures`` (cumulative from the call's start, like
  curl's; 0 for a step that did not happen, e.g. ``time_appconnect`` without TLS).
- ``http_code`` has three digits (``000`` when there was no response); sizes and ports are
  integers; strings are printed as they are (a Unix socket's path is its ``remote_ip``).
- ``@file`` reads the format from a file and ``@-`` from stdin (``load_format``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from .events import TraceEvent
from .summary import Summary, summarize


@dataclass(frozen=True)
class ResponseFacts:
    """What the events do not say: the response and request as the caller saw them."""

    http_code: int = 0
    size_download: int | None = None  # body bytes; None: bytes received per the events
    size_header: int = 0
    size_request: int = 0
    size_upload: int | None = None  # body bytes; None: bytes sent per the events
    url: str = ""
    url_effective: str = ""  # defaults to url
    method: str = "GET"
    scheme: str = ""  # e.g. "http"; printed upper-case like curl 7.88
    content_type: str = ""
    http_version: str = ""  # "1.1", "1", "2"; "0" when unknown
    remote_port: int | None = None  # override: curl shows the URL's port for Unix sockets
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = field(default_factory=tuple)
    num_connects: int | None = None  # None: 1 for a new connection, 0 for a reused one
    num_redirects: int = 0  # redirects followed (call -L)
    exitcode: int = 0
    errormsg: str = ""

    def header_items(self) -> list[tuple[str, str]]:
        items = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        return [(str(k), str(v)) for k, v in items]


def format_seconds(ns: int | None) -> str:
    """curl's time format: whole seconds, a dot, six digits of microseconds (truncated)."""
    us = max(0, ns or 0) // 1000
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _variables(s: Summary, facts: ResponseFacts) -> dict[str, tuple[str, Any]]:
    """name -> (type, value); type is 'time', 'int', 'code' or 'str'."""
    remote, local = s.remote, s.local
    total_s = s.total_ns / 1e9
    down = facts.size_download if facts.size_download is not None else s.counts["size_download"]
    up = facts.size_upload if facts.size_upload is not None else s.counts["size_upload"]
    remote_port = facts.remote_port if facts.remote_port is not None else (
        remote.port if remote else 0)
    connects = facts.num_connects if facts.num_connects is not None else (
        0 if s.reused or s.connect_ns is None else 1)
    return {
        # every time figure of trace.figures (curl's time_* and ours), as defined there
        **{name: ("time", value) for name, value in s.figures.items()},
        "time_redirect": ("time", 0),
        "remote_ip": ("str", remote.ip if remote else ""),
        "remote_port": ("int", remote_port),
        "local_ip": ("str", local.ip if local else ""),
        "local_port": ("int", local.port if local else 0),
        "http_code": ("code", facts.http_code),
        "response_code": ("code", facts.http_code),
        "http_connect": ("code", 0),
        "size_download": ("int", down),
        "size_upload": ("int", up),
        "size_header": ("int", facts.size_header),
        "size_request": ("int", facts.size_request),
        "speed_download": ("int", int(down / total_s) if total_s > 0 else 0),
        "speed_upload": ("int", int(up / total_s) if total_s > 0 else 0),
        "num_connects": ("int", connects),
        "num_redirects": ("int", facts.num_redirects),
        "num_headers": ("int", len(facts.header_items())),
        "exitcode": ("int", facts.exitcode),
        "errormsg": ("str", facts.errormsg or None),
        "url": ("str", facts.url),
        "url_effective": ("str", facts.url_effective or facts.url),
        "method": ("str", facts.method),
        "scheme": ("str", facts.scheme.upper() or None),
        "content_type": ("str", facts.content_type or None),
        "http_version": ("str", facts.http_version or "0"),
        "redirect_url": ("str", None),
    }


def _text(kind: str, value: Any) -> str:
    if kind == "time":
        return format_seconds(value)
    if kind == "code":
        return f"{int(value):03d}"
    if kind == "int":
        return str(int(value))
    return "" if value is None else str(value)


def _json(variables: dict[str, tuple[str, Any]]) -> str:
    """``%{json}``: every variable in one object, times in curl's six-decimal form."""
    parts = []
    for name in sorted(variables):
        kind, value = variables[name]
        if kind == "time":
            text = format_seconds(value)
        elif kind in ("int", "code"):
            text = str(int(value))
        else:
            text = "null" if value is None else json.dumps(value)
        parts.append(f"{json.dumps(name)}:{text}")
    return "{" + ",".join(parts) + "}"


def _header_json(facts: ResponseFacts) -> str:
    """``%{header_json}`` laid out like curl: lower-case names, a list of values each."""
    grouped: dict[str, list[str]] = {}
    for name, value in facts.header_items():
        grouped.setdefault(name.lower(), []).append(value)
    body = ",\n".join(f"{json.dumps(n)}:{json.dumps(v, separators=(',', ':'))}"
                      for n, v in grouped.items())
    return "{" + body + "\n}"


def write_out(fmt: str, events: Iterable[TraceEvent], facts: ResponseFacts = ResponseFacts(),
              *, conn: int | None = None, local: Any = None, remote: Any = None,
              on_unknown: Callable[[str], None] | None = None) -> str:
    """Expand curl's ``-w`` format ``fmt`` for one call (client side of ``conn``)."""
    variables = _variables(summarize(events, conn=conn, local=local, remote=remote), facts)
    out: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c == "%" and i + 1 < n:
            nxt = fmt[i + 1]
            if nxt == "%":
                out.append("%")
                i += 2
            elif nxt == "{":
                end = fmt.find("}", i + 2)
                if end < 0:
                    out.append("%{")
                    i += 2
                    continue
                name = fmt[i + 2:end]
                key = name.lower()
                if key in variables:
                    out.append(_text(*variables[key]))
                elif key == "json":
                    out.append(_json(variables))
                elif key == "header_json":
                    out.append(_header_json(facts))
                elif on_unknown is not None:
                    on_unknown(name)
                i = end + 1
            elif fmt.startswith("header{", i + 1):
                end = fmt.find("}", i + 8)
                if end < 0:
                    out.append("%header{")
                    i += 8
                    continue
                wanted = fmt[i + 8:end].lower()
                # like curl: the first header of that name, empty when there is none
                out.append(next((v for k, v in facts.header_items() if k.lower() == wanted),
                                ""))
                i = end + 1
            else:
                out.append(fmt[i:i + 2])
                i += 2
        elif c == "\\" and i + 1 < n:
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(fmt[i + 1], fmt[i:i + 2]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def load_format(arg: str, stdin: IO[str] | None = None) -> str:
    """curl's ``-w`` argument: ``@file`` reads the format from a file, ``@-`` from ``stdin``,
    anything else is the format itself."""
    if not arg.startswith("@"):
        return arg
    if arg == "@-":
        if stdin is None:
            raise ValueError("-w @- reads the format from stdin, but no stdin was given")
        return stdin.read()
    with open(os.path.expanduser(arg[1:]), encoding="utf-8") as f:
        return f.read()
