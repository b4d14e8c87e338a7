"""The echo service: every byte (or datagram) comes back as it came.

Used by ``trunkline serve echo`` and by the tour. The stream handler honours half-close:
after the client's EOF it sends what is left, then its own EOF.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..address import Identity, PeerCredentials
from ..stream import Stream


async def echo_stream(stream: Stream) -> None:
    """Echo bytes until the peer's EOF, then half-close (the server closes the rest)."""
    while chunk := await stream.read(256 * 1024):
        stream.write(chunk)
        await stream.drain()
    if stream.can_write_eof():
        stream.write_eof()


async def echo_datagram(data: bytes, source: Identity) -> bytes | None:
    """Send each datagram back to where it came from."""
    return data


@dataclass(frozen=True)
class ServerView:
    """One connection as the server saw it: its own end, the peer's end, the peer process."""

    local: Identity | None
    peer: Identity | None
    credentials: PeerCredentials | None


class WatchedEcho:
    """The echo service that also reports each new connection or datagram source, so the
    tour can show both ends of every socket."""

    def __init__(self) -> None:
        self.views: asyncio.Queue[ServerView] = asyncio.Queue()
        self._sources: set[Identity] = set()

    async def stream(self, stream: Stream) -> None:
        self.views.put_nowait(ServerView(stream.local, stream.peer, stream.peer_credentials))
        await echo_stream(stream)

    async def datagram(self, data: bytes, source: Identity) -> bytes | None:
        if source not in self._sources:
            self._sources.add(source)
            self.views.put_nowait(ServerView(None, source, None))
        return data
