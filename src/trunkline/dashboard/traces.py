"""The traces panel's data: trace files in one directory, read as they grow.

What ``--trace-file`` writes, by file name:
- ``*.jsonl``, ``*.ndjson`` (``trunkline serve --trace-file``, ``JsonLinesSink``): one event
  per line; each connection is one trace (``side``, ``conn``; a server restarted onto the
  same file numbers connections from 1 again, so a second ACCEPT of a number starts a new
  trace). Read incrementally: only the bytes added since the last look.
- ``*.json`` (``trunkline call --trace=json --trace-file``): one document, one call.
- ``*.txt``, ``*.trace`` (``call --trace-file``, text): the timeline as written.
- ``*.mmd`` (``--trace=mermaid``, the tour's diagrams): the diagram as written.

A file is looked at again when its inode, size or modification time changed; it is read
from its start when its inode or its first bytes changed or it shrank (a file replaced by one
of the same size within the same clock tick is not noticed until it grows).
The directory and its subdirectories one level down are looked at (the tour writes one
directory per run). A client call and the server connection that served it are shown as one
trace when they share a trace id or the client's local endpoint is the server's peer
(``trace.summary.merge``): the server's own entry then folds into the client's.

Timestamps are ``time.monotonic_ns()``, one clock for every process of the host, turned into
wall-clock time with this process's offset.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..trace.events import Step, TraceEvent
from ..trace.mermaid import render_mermaid
from ..trace.summary import endpoint, merge
from ..trace.timeline import render_timeline

LINES = (".jsonl", ".ndjson")
SUFFIXES = (*LINES, ".json", ".txt", ".trace", ".mmd")
MAX_ENTRIES = 300  # traces kept (the newest)
MAX_READ = 1024 * 1024  # bytes read from one file per look (the loop waits meanwhile)
TAIL = 4 * 1024 * 1024  # a long file seen for the first time is read from this near its end
MAX_WHOLE = 4 * 1024 * 1024  # documents larger than this are not read
HEAD = 256  # bytes compared to tell a new file that took an old one's inode


@dataclass
class TraceEntry:
    id: str
    file: str  # relative to the directory
    format: str  # "events", "text" or "mermaid"
    events: list[TraceEvent] = field(default_factory=list)
    text: str = ""  # the file itself, for text and mermaid
    mtime: float = 0.0
    trace_id: str | None = None

    @property
    def side(self) -> str:
        sides = {e.side for e in self.events}
        return "+".join(s for s in ("client", "server") if s in sides) or "-"

    def end_ns(self) -> int:
        return max((e.end_ns for e in self.events), default=0)


@dataclass
class _FileState:
    key: tuple[int, int]  # (device, inode): a replaced file is read again from the start
    head: bytes = b""  # its first bytes: a new file given the old inode differs here
    size: int = 0
    mtime: float = 0.0
    offset: int = 0
    pending: bytes = b""
    groups: dict[tuple[str, int], str] = field(default_factory=dict)  # (side, conn) -> id
    generation: int = 0
    ids: list[str] = field(default_factory=list)


def _entry_id(*parts: object) -> str:
    return hashlib.sha1("\0".join(map(str, parts)).encode()).hexdigest()[:16]


def epoch_offset_ns() -> int:
    return time.time_ns() - time.monotonic_ns()


class TraceFolder:
    """The traces under ``directory``; ``scan()`` reads what changed and says whether
    anything did."""

    def __init__(self, directory: Path, limit: int = MAX_ENTRIES) -> None:
        self.directory = directory
        self.limit = limit
        self.entries: dict[str, TraceEntry] = {}
        self.files: dict[str, _FileState] = {}
        self.skipped: set[str] = set()  # files too large to read
        self.error: str | None = None  # the directory cannot be read

    def _candidates(self) -> list[Path]:
        found = []
        try:
            for top in os.scandir(self.directory):
                if top.is_file() and top.name.endswith(SUFFIXES):
                    found.append(Path(top.path))
                elif top.is_dir(follow_symlinks=False):
                    with os.scandir(top.path) as inner:
                        found += [Path(f.path) for f in inner
                                  if f.is_file() and f.name.endswith(SUFFIXES)]
            self.error = None
        except OSError as exc:
            self.error = f"cannot read {self.directory}: {exc.strerror or exc}"
        return found

    def scan(self) -> bool:
        changed = False
        seen = set()
        for path in self._candidates():
            name = str(path.relative_to(self.directory))
            seen.add(name)
            try:
                info = path.stat()
            except OSError:
                continue
            state = self.files.get(name)
            if state is not None and state.key == (info.st_dev, info.st_ino) and \
                    state.size == info.st_size and state.mtime == info.st_mtime and \
                    (state.offset >= state.size or not name.endswith(LINES)):
                continue  # unchanged, and read to its end
            try:
                changed |= self._read(path, name, info, state)
            except OSError:
                continue  # gone or unreadable meanwhile; next look tries again
        for name in set(self.files) - seen:
            self._forget(name)
            self.skipped.discard(name)
            changed = True
        if changed:
            self._trim()
        return changed

    def _forget(self, name: str) -> None:
        state = self.files.pop(name, None)
        for entry_id in state.ids if state else ():
            self.entries.pop(entry_id, None)

    def _read(self, path: Path, name: str, info: os.stat_result,
              state: _FileState | None) -> bool:
        key = (info.st_dev, info.st_ino)
        with path.open("rb") as f:
            head = f.read(HEAD)
        if state is None or state.key != key or info.st_size < state.offset or \
                head[:len(state.head)] != state.head:
            self._forget(name)
            state = _FileState(key)
            self.files[name] = state
        state.head = head
        state.size, state.mtime = info.st_size, info.st_mtime
        if name.endswith(LINES):
            return self._read_lines(path, name, state)
        if info.st_size > MAX_WHOLE:
            self.skipped.add(name)
            return False
        self.skipped.discard(name)
        text = path.read_text("utf-8", errors="replace")
        entry_id = _entry_id(name)
        entry = TraceEntry(entry_id, name, "events", mtime=info.st_mtime)
        if name.endswith(".json"):
            try:
                document = json.loads(text)
                entry.events = [TraceEvent.from_dict(e) for e in document["events"]]
                entry.trace_id = document.get("trace_id")
            except (ValueError, KeyError, TypeError, AttributeError):
                state.ids = []  # some other JSON (a bench result...): not a trace
                return self.entries.pop(entry_id, None) is not None
        else:
            entry.format = "mermaid" if name.endswith(".mmd") else "text"
            entry.text = text
        self.entries[entry_id] = entry
        state.ids = [entry_id]
        return True

    def _read_lines(self, path: Path, name: str, state: _FileState) -> bool:
        skip_partial = False
        if state.offset == 0 and state.size > TAIL:  # only the recent end is wanted
            state.offset, skip_partial = state.size - TAIL, True
        with path.open("rb") as f:
            f.seek(state.offset)
            data = f.read(MAX_READ)
        state.offset += len(data)
        lines = (state.pending + data).split(b"\n")
        state.pending = lines.pop()  # a line still being written
        if skip_partial and lines:
            lines.pop(0)  # the tail began mid-line
        changed = False
        for line in lines:
            try:
                raw = json.loads(line)
                event = TraceEvent.from_dict(raw)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not an event line
            group = (event.side, event.conn)
            entry_id = state.groups.get(group)
            entry = self.entries.get(entry_id) if entry_id else None
            if entry is None or (event.step in (Step.ACCEPT, Step.SOCKET)
                                 and any(e.step is event.step for e in entry.events)):
                state.generation += 1
                entry_id = _entry_id(name, state.generation, *group)
                entry = TraceEntry(entry_id, name, "events")
                self.entries[entry_id] = entry
                state.groups[group] = entry_id
                state.ids.append(entry_id)
            entry.events.append(event)
            entry.mtime = state.mtime
            trace_id = raw.get("trace_id") or event.detail.get("trace_id")
            if trace_id:
                entry.trace_id = str(trace_id)
            changed = True
        return changed

    def _trim(self) -> None:
        if len(self.entries) <= self.limit:
            return
        ordered = sorted(self.entries.values(), key=self._order, reverse=True)
        for entry in ordered[self.limit:]:
            del self.entries[entry.id]

    @staticmethod
    def _order(entry: TraceEntry) -> float:
        if entry.events:
            return (entry.end_ns() + epoch_offset_ns()) / 1e9
        return entry.mtime

    # ------------------------------------------------------------------ what the page reads

    def _served(self) -> dict[str, list[TraceEntry]]:
        """Client entry id -> the server entries of the same call (by trace id or by the
        client's local endpoint being the server's peer)."""
        by_trace: dict[str, list[TraceEntry]] = {}
        by_peer: dict[str, list[TraceEntry]] = {}
        for entry in self.entries.values():
            if entry.side != "server":
                continue
            if entry.trace_id:
                by_trace.setdefault(entry.trace_id, []).append(entry)
            accept = next((e for e in entry.events if e.step is Step.ACCEPT), None)
            peer = endpoint(accept.detail.get("peer")) if accept else None
            if peer is not None:
                by_peer.setdefault(peer.text, []).append(entry)
        found: dict[str, list[TraceEntry]] = {}
        for entry in self.entries.values():
            if "client" not in entry.side:
                continue
            servers = list(by_trace.get(entry.trace_id or "", []))
            for event in entry.events:
                local = endpoint(event.detail.get("local")) if event.step is Step.CONNECT \
                    else None
                if local is not None:
                    servers += [s for s in by_peer.get(local.text, []) if s not in servers
                                and _overlaps(entry, s)]
            if servers:
                found[entry.id] = servers
        return found

    def listing(self, limit: int = 200) -> dict[str, Any]:
        """The newest traces, newest first, as the list on the page shows them."""
        served = self._served()
        folded = {s.id for servers in served.values() for s in servers}
        shown = [e for e in self.entries.values() if e.id not in folded]
        shown.sort(key=self._order, reverse=True)
        offset = epoch_offset_ns()
        items = [describe(e, _events_of(e, served), offset) for e in shown[:limit]]
        return {"directory": str(self.directory), "error": self.error, "traces": items,
                "total": len(shown), "skipped_files": sorted(self.skipped)}

    def detail(self, entry_id: str) -> dict[str, Any] | None:
        entry = self.entries.get(entry_id)
        if entry is None:
            return None
        served = self._served()
        events = _events_of(entry, served)
        data = describe(entry, events, epoch_offset_ns())
        data["text"] = entry.text
        if entry.format != "events":
            data["mermaid"] = entry.text if entry.format == "mermaid" else ""
            data["events"] = []
            return data
        t0 = min((e.start_ns for e in events), default=0)
        data["events"] = [{**e.to_dict(), "offset_ns": e.start_ns - t0} for e in events]
        data["timeline"] = render_timeline(events) if "client" in entry.side else ""
        data["mermaid"] = render_mermaid(events)
        return data


def _overlaps(client: TraceEntry, server: TraceEntry) -> bool:
    """The server connection lived while the client's did (endpoints are reused)."""
    c0 = min(e.start_ns for e in client.events)
    s0 = min(e.start_ns for e in server.events)
    return s0 <= client.end_ns() and c0 <= server.end_ns()


def _events_of(entry: TraceEntry, served: dict[str, list[TraceEntry]]) -> list[TraceEvent]:
    servers = served.get(entry.id)
    if not servers:
        return sorted(entry.events, key=lambda e: (e.end_ns, e.start_ns))
    server_events = [e for s in servers for e in s.events]
    return merge(entry.events, server_events)


def describe(entry: TraceEntry, events: list[TraceEvent], offset_ns: int) -> dict[str, Any]:
    """One line of the trace list: what was called, over what, when, how long."""
    sides = {e.side for e in events}
    side = "+".join(s for s in ("client", "server") if s in sides) or entry.format
    data: dict[str, Any] = {"id": entry.id, "file": entry.file, "format": entry.format,
                            "side": side, "trace_id": entry.trace_id, "title": entry.file,
                            "kind": "", "local": None, "remote": None, "events_count":
                            len(events), "started": entry.mtime, "duration_ms": None,
                            "status": None}
    if not events:
        first = entry.text.strip().splitlines()[:1]
        if first and entry.format == "text":
            data["title"] = first[0][:120]
        return data
    start = min(e.start_ns for e in events)
    end = max(e.end_ns for e in events)
    data["started"] = (start + offset_ns) / 1e9
    data["duration_ms"] = round((end - start) / 1e6, 3)
    head = next((e for e in events if e.step is Step.REQUEST_HEADERS), None)
    done = next((e for e in events if e.step is Step.RESPONSE_DONE and "status" in e.detail),
                None)
    if done is not None:
        data["status"] = done.detail["status"]
    connect = next((e for e in events if e.step in (Step.CONNECT, Step.ACCEPT)), None)
    if connect is not None:
        d = connect.detail
        data["kind"] = str(d.get("transport") or d.get("kind") or _kind(events))
        ends = (d.get("local"), d.get("peer"))
        if connect.step is Step.ACCEPT:  # the server's view: the peer is the caller
            ends = (d.get("peer"), d.get("local"))
        local, remote = (endpoint(x) for x in ends)
        data["local"] = local.text if local else None
        data["remote"] = remote.text if remote else None
    if head is not None:  # a kept-alive connection carries several requests
        heads = [f"{e.detail.get('method', '?')} {e.detail.get('target', '')}" for e in events
                 if e.step is Step.REQUEST_HEADERS and e.side == head.side]
        more = f" (+{len(heads) - 3} more)" if len(heads) > 3 else ""
        data["title"] = ", ".join(heads[:3]) + more
    else:
        counts = {s: sum(1 for e in events if e.step is s) for s in (Step.SEND, Step.RECEIVE)}
        data["title"] = f"{counts[Step.SEND]} sends, {counts[Step.RECEIVE]} receives" if any(
            counts.values()) else events[-1].step.value
    return data


def _kind(events: list[TraceEvent]) -> str:
    socket = next((e for e in events if e.step is Step.SOCKET), None)
    if socket is not None:
        return str(socket.detail.get("protocol") or socket.detail.get("family") or "")
    return ""
