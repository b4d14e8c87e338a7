"""Placeholder: datagram transports (udp, unixgram) are being written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..address import Identity
from ..errors import UnsupportedError

DatagramHandler = Callable[[bytes, Identity], Awaitable[bytes | None]]


async def serve_datagram(address: Any, handler: DatagramHandler, options: Any) -> Any:
    raise UnsupportedError("datagram transports not written yet")
