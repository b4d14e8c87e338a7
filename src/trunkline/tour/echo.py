"""The tour's echo service: every byte (or datagram) comes back as it came, and each new
connection or datagram source is reported so the tour can show both ends of the socket.

``trunkline serve echo`` does not use this: it runs ``apps.echo_service.EchoServer``, which
also sniffs each connection for HTTP. The stream handler honours half-close: after the
client's EOF it sends what is left, then its own EOF.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..address import Identity, PeerCredentials
from ..aio.stream import Stream


async def echo_stream(stream: Stream) -> None:
    """Echo bytes until the peer's EOF, then half-close (the server closes the rest)."""
    while chunk := await stream.read(256 * 1024):
        stream.write(chunk)
        await stream.drain()
    if stream.can_write_eof():
        stream.write_eof()


@dataclass
class ServerView:
    """One connection as the server saw it: its own end, the peer's end, the peer process,
    and (with a tracer) which connection number its trace events carry."""

    local: Identity | None
    peer: Identity | None
    credentials: PeerCredentials | None
    conn: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


class WatchedEcho:
    """The echo service that also reports each new connection or datagram source, so the
    tour can show both ends of every socket. With a tracer (given to ``serve``) it leaves
    the first exchange and the close in the trace and keeps the timed rounds out of it."""

    def __init__(self) -> None:
        self.views: asyncio.Queue[ServerView] = asyncio.Queue()
        self._sources: set[Identity] = set()

    async def stream(self, stream: Stream) -> None:
        view = ServerView(stream.local, stream.peer, stream.peer_credentials,
                          getattr(stream, "conn", 0))
        self.views.put_nowait(view)
        tracer = getattr(stream, "tracer", None)
        try:
            if first := await stream.read(256 * 1024):
                stream.write(first)
                await stream.drain()
                if tracer is not None:
                    stream.tracer = None  # the rounds are measured, not traced
                await echo_stream(stream)
            elif stream.can_write_eof():
                stream.write_eof()
        finally:
            if tracer is not None:
                stream.tracer = tracer
            stream.close()
            view.done.set()

    async def datagram(self, data: bytes, source: Identity) -> bytes | None:
        if source not in self._sources:
            self._sources.add(source)
            view = ServerView(None, source, None)
            view.done.set()
            self.views.put_nowait(view)
        return data
