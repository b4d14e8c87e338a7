"""Relays, socat-like: bytes between two stream endpoints (``stream``: addresses, or a
command per connection, ``exec``), datagrams between two datagram addresses with a session
per source (``datagram``), and WebSocket messages to and from byte streams (``websocket``).

    relay = await trunkline.relay.start_relay("tcp://127.0.0.1:8000", "unix:///run/app.sock")
    ...
    await relay.aclose()
    ws = await trunkline.relay.start_websocket_relay("ws://127.0.0.1:8080/", "tcp://...")
"""

from __future__ import annotations

import importlib
from typing import Any

from .datagram import DatagramRelay, start_datagram_relay
from .exec import ExecTarget
from .stream import ConnectionReport, OnData, Relay, RelayStats, Target, start_relay

__all__ = ["ConnectionReport", "DatagramRelay", "ExecTarget", "OnData", "Relay", "RelayStats",
           "Target", "start_datagram_relay", "start_relay"]


def __getattr__(name: str) -> Any:
    # the WebSocket bridges load the HTTP server and client: only when asked for
    if name == "websocket":
        return importlib.import_module(".websocket", __name__)
    if name == "start_websocket_relay":
        return importlib.import_module(".websocket", __name__).start_websocket_relay
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
