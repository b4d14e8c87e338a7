"""One access log line per request on the ``trunkline.access`` logger (level INFO).

A line names the transport and the peer, so a request over a Unix socket says which process
sent it::

    unix /run/app.sock pid=4242 uid=1000 gid=1000 "GET /users HTTP/1.1" 200 51
    tcp 127.0.0.1:8000 127.0.0.1:53122 "POST /users HTTP/1.1" 201 38

The same facts ride on the record as ``transport``, ``peer``, ``method``, ``path``,
``status`` and ``bytes`` attributes, for handlers that format their own lines.

Rules:
- Off the hot path: a response appends one tuple to its server's ``AccessLog``; the records
  are made and handed to the logger in batches, every ``FLUSH_SECONDS``, at ``BATCH`` lines
  and when the server stops (``flush``). A record's time is its response's, not the
  batch's. Lines can therefore trail the response by up to ``FLUSH_SECONDS``, and lines
  still buffered are lost if the process is killed.
- A batch's records are copies of one record made the usual way (``Logger.makeRecord``,
  so a record factory still applies) with each line's own fields: no caller lookup, no
  thread or process lookups per line.
- Nothing is buffered (nor formatted) while the logger is not enabled for INFO.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..protocol.http_server_events import RequestHead

logger = logging.getLogger("trunkline.access")

#: logging's own cache of ``logger.isEnabledFor`` answers by level (``Logger._cache``, which
#: every ``setLevel`` and ``logging.disable`` empties in place). The server reads it on
#: every response, a dict look-up instead of a Python call (~400 instructions less), and
#: calls ``isEnabledFor`` when the level is not in it (then it is again); a True from it
#: still has ``logger.disabled`` checked.
ENABLED: dict[int, bool] = getattr(logger, "_cache", {})  # ({}: always asks)

FLUSH_SECONDS = 0.1  # the longest a line waits
BATCH = 256  # lines that are written at once without waiting for the timer

_REQUEST = '%s %s "%s %s HTTP/%s" %d %d'

# (time, the connection's trunkline.transport extension, head, status, body bytes)
Line = tuple[float, dict[str, Any], "RequestHead", int, int]


def transport_name(ext: dict[str, Any]) -> str:
    local = ext.get("local") or ext.get("address") or "?"
    return f"{ext.get('kind', '?')} {local}"


def peer_name(ext: dict[str, Any]) -> str:
    creds = ext.get("credentials")
    if creds is not None:
        who = f"pid={creds['pid']} uid={creds['uid']} gid={creds['gid']}"
        peer = ext.get("peer")
        return f"{peer} {who}" if peer else who
    return ext.get("peer") or "-"


class AccessLog:
    """One server's request lines, waiting to be logged (see the module rules)."""

    def __init__(self) -> None:
        self._lines: list[Line] = []
        self._timer: asyncio.TimerHandle | None = None

    def request(self, loop: asyncio.AbstractEventLoop, ext: dict[str, Any], head: RequestHead,
                status: int, size: int) -> None:
        """A response is complete (the caller checked that the logger is enabled)."""
        lines = self._lines
        lines.append((time.time(), ext, head, status, size))
        if len(lines) == 1:
            self._timer = loop.call_later(FLUSH_SECONDS, self.flush)
        elif len(lines) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Log every line waiting, now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines, self._lines = self._lines, []
        if lines and logger.isEnabledFor(logging.INFO):
            _log_lines(lines)


def _log_lines(lines: list[Line]) -> None:
    template = logger.makeRecord(logger.name, logging.INFO, __file__, 0, _REQUEST, (), None,
                                 "log_request")
    record_type = type(template)
    shared = template.__dict__
    base_time, base_relative = template.created, template.relativeCreated
    names: dict[int, tuple[str, str]] = {}  # id(ext) -> transport and peer names
    handle = logger.handle
    new = record_type.__new__
    for created, ext, head, status, size in lines:
        known = names.get(id(ext))
        if known is None:
            known = names[id(ext)] = (transport_name(ext), peer_name(ext))
        transport, peer = known
        target = head.target.decode("latin-1")
        record = new(record_type)
        record.__dict__ = {
            **shared,
            "args": (transport, peer, head.method, target, head.http_version, status, size),
            "created": created, "msecs": int((created - int(created)) * 1000) + 0.0,
            "relativeCreated": base_relative - (base_time - created) * 1000,
            "transport": transport, "peer": peer, "method": head.method, "path": target,
            "status": status, "bytes": size}
        handle(record)


def log_rejected(ext: dict[str, Any], status: int, reason: str) -> None:
    transport = transport_name(ext)
    peer = peer_name(ext)
    logger.info('%s %s "-" %d 0 (%s)', transport, peer, status, reason,
                extra={"transport": transport, "peer": peer, "method": None, "path": None,
                       "status": status, "bytes": 0})


__all__ = ["BATCH", "ENABLED", "FLUSH_SECONDS", "AccessLog", "log_rejected", "logger",
           "peer_name", "transport_name"]
