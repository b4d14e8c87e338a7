"""One access log line per request on the ``trunkline.access`` logger (level INFO).

A line names the transport and the peer, so a request over a Unix socket says which process
sent it::

    unix /run/app.sock pid=4242 uid=1000 gid=1000 "GET /users HTTP/1.1" 200 51
    tcp 127.0.0.1:8000 127.0.0.1:53122 "POST /users HTTP/1.1" 201 38

The same facts ride on the record as ``transport``, ``peer``, ``method``, ``path``,
``status`` and ``bytes`` attributes, for handlers that format their own lines.
Logging is skipped entirely (not just filtered) while the logger is not enabled for INFO.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cycle import Cycle

logger = logging.getLogger("trunkline.access")


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


def log_request(ext: dict[str, Any], cycle: Cycle) -> None:
    head = cycle.head
    target = head.target.decode("latin-1")
    transport = transport_name(ext)
    peer = peer_name(ext)
    logger.info('%s %s "%s %s HTTP/%s" %d %d', transport, peer, head.method, target,
                head.http_version, cycle.status, cycle.body_bytes,
                extra={"transport": transport, "peer": peer, "method": head.method,
                       "path": target, "status": cycle.status, "bytes": cycle.body_bytes})


def log_rejected(ext: dict[str, Any], status: int, reason: str) -> None:
    transport = transport_name(ext)
    peer = peer_name(ext)
    logger.info('%s %s "-" %d 0 (%s)', transport, peer, status, reason,
                extra={"transport": transport, "peer": peer, "method": None, "path": None,
                       "status": status, "bytes": 0})


__all__ = ["log_rejected", "log_request", "logger", "peer_name", "transport_name"]
