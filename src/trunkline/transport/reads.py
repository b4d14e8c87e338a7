"""How bytes reach a protocol: the two read callbacks, and the one choice between them.

- ``ReadsBothWays``: a protocol with both read callbacks, ``get_buffer``/``buffer_updated``
  (the loop reads into the protocol's own preallocated buffer: no ``recv(256 KiB)`` per read,
  CPython issue 85451) and ``data_received`` (a read that already is ``bytes``). The event
  loop picks by class: the stdlib loop calls the buffered pair of any ``BufferedProtocol``;
  uvloop calls ``data_received`` of an ``asyncio.Protocol``, reading into its own buffer
  (two Python calls fewer per read). That is right for plain sockets and wrong for TLS
  (uvloop's TLS layer would then allocate 256 KiB per read), so the choice is made once,
  where a transport is opened or listened on: ``cls.for_transport(tls)``.
- ``feeder(protocol)`` / ``feed(protocol, data)``: hand bytes to any protocol as one read,
  for code that drives a protocol itself (the FIFO pair's transport, a protocol swap).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Self


class ReadsBothWays(asyncio.BufferedProtocol):
    """Base of protocols that implement both read paths (see the module docstring)."""

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError

    @classmethod
    def for_transport(cls, tls: bool) -> type[Self]:
        """The class to instantiate for a TLS (``cls`` itself: always read into our buffer)
        or a plain transport (also an ``asyncio.Protocol``: uvloop calls
        ``data_received``; the stdlib loop still reads into our buffer)."""
        if tls:
            return cls
        plain: type[Self] | None = _PLAIN.get(cls)
        if plain is None:  # made once per class
            plain = _PLAIN[cls] = type(cls.__name__, (cls, asyncio.Protocol), {
                "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                "__doc__": f"{cls.__name__} for a plain transport: also an asyncio.Protocol."})
        return plain


_PLAIN: dict[type[Any], Any] = {}


Feed = Callable[[bytes], None]


def feeder(protocol: asyncio.BaseProtocol) -> Feed:
    """How to hand bytes to ``protocol`` as one read: its ``data_received`` when it has one
    (one call, no copy), else copies into ``get_buffer`` of a pure ``BufferedProtocol``."""
    data_received = getattr(protocol, "data_received", None)
    if data_received is not None:
        return data_received  # type: ignore[no-any-return]
    if not isinstance(protocol, asyncio.BufferedProtocol):
        raise TypeError(f"{protocol!r} is neither a Protocol nor a BufferedProtocol")

    def feed_buffered(data: bytes) -> None:
        view = memoryview(data)
        while view:
            buf = memoryview(protocol.get_buffer(len(view))).cast("B")
            n = min(len(buf), len(view))
            if n == 0:  # would loop forever
                raise RuntimeError(f"{protocol!r}.get_buffer() returned an empty buffer")
            buf[:n] = view[:n]
            protocol.buffer_updated(n)
            view = view[n:]

    return feed_buffered


def feed(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Hand ``data`` to ``protocol`` as one read (see ``feeder``)."""
    feeder(protocol)(data)


__all__ = ["Feed", "ReadsBothWays", "feed", "feeder"]
