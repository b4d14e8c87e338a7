"""Relays, socat-like: bytes between two stream endpoints (``stream``: addresses, or a
command per connection, ``exec``), datagrams between two datagram addresses with a session
per source (``datagram``), and WebSocket messages to and from byte streams (``websocket``).

    relay = await trunkline.relay.start_relay("tcp://127.0.0.1:8000", "unix:///run/app.sock")
    ...
    await relay.aclose()
"""

from __future__ import annotations

from .datagram import DatagramRelay, start_datagram_relay
from .exec import ExecTarget
from .stream import ConnectionReport, OnData, Relay, RelayStats, Target, start_relay

__all__ = ["ConnectionReport", "DatagramRelay", "ExecTarget", "OnData", "Relay", "RelayStats",
           "Target", "start_datagram_relay", "start_relay"]
