"""A datagram relay (udp and unixgram, either way): a session per source address.

    relay = await start_datagram_relay("udp://127.0.0.1:5353", "unixgram:///run/dns.sock")

Rules:
- Each source address seen on a listening socket gets its own session: a socket connected
  to the target (UDP takes an ephemeral port, unixgram an autobound abstract name), so the
  target's replies to that socket go back to that source, and to no other. socat's
  ``UDP-RECVFROM:...,fork`` does the same with a process per source.
- A session ends after ``idle_timeout`` seconds without a datagram either way (socat's
  ``-T``), when the relay stops, or when its socket fails; one log line says what it
  carried. At most ``max_sessions`` at once: a datagram from a new source beyond that is
  dropped (logged at most every 10 s), as a full socket would drop it.
- A unixgram sender with no address (an unbound socket) cannot be answered: its datagrams
  are forwarded and replies to them dropped (one shared session, logged once).
- Datagrams are never split or joined. A send that fails (the target is not there: ICMP
  port unreachable, no such socket) is logged and the datagram dropped; the session goes on.
- Stopping: the listeners close and every session ends at once (a reply can only go out
  through the listening socket, which is gone).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..address import Address, Identity, UnixIdentity, format_address, is_datagram, parse_address
from ..aio.datagram import DatagramEndpoint, bind_datagram, open_datagram
from ..errors import TrunklineError, UnsupportedError
from ..host import DEFAULT_SHUTDOWN_TIMEOUT, Endpoint, HostedServer, ServiceHost
from ..transport.base import Listener, ListenOptions, RateLimitedLog, describe
from .stream import OnData

log = logging.getLogger("trunkline.relay")

#: A session with no datagram either way for this long ends (socat's -T).
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MAX_SESSIONS = 1024


@dataclass(frozen=True)
class SessionReport:
    number: int
    source: str
    target: str
    datagrams_up: int
    datagrams_down: int
    bytes_up: int
    bytes_down: int
    duration_s: float


class _Session:
    """One source and the socket connected to the target for it."""

    def __init__(self, relay: DatagramRelay, number: int, listener: DatagramEndpoint,
                 source: Identity | None, target: DatagramEndpoint) -> None:
        self.relay = relay
        self.number = number
        self.listener = listener
        self.source = source  # None: a sender that cannot be answered
        self.target = target
        self.started = time.monotonic()
        self.last = self.started
        self.up = [0, 0]  # datagrams, bytes
        self.down = [0, 0]
        self.closed = False
        loop = asyncio.get_running_loop()
        self._replies = loop.create_task(self._relay_replies())
        self._timer = loop.call_later(relay.idle_timeout, self._check_idle)

    async def forward(self, data: bytes) -> None:
        self.last = time.monotonic()
        on_data = self.relay.on_data
        if on_data is not None:
            on_data(self.number, True, memoryview(data), self.up[1])
        self.up[0] += 1
        self.up[1] += len(data)
        try:
            await self.target.send(data)
        except (TrunklineError, OSError) as exc:
            log.warning("session %d: cannot send to %s: %s", self.number,
                        self.relay.target_url, exc)

    async def _relay_replies(self) -> None:
        try:
            async for data, _ in self.target:
                self.last = time.monotonic()
                on_data = self.relay.on_data
                if on_data is not None:
                    on_data(self.number, False, memoryview(data), self.down[1])
                self.down[0] += 1
                self.down[1] += len(data)
                if self.source is not None:
                    await self.listener.send_to(data, self.source)
        except (TrunklineError, OSError) as exc:
            if not self.closed:
                log.warning("session %d: %s", self.number, exc)
        self.close()

    def _check_idle(self) -> None:
        idle = time.monotonic() - self.last
        if idle >= self.relay.idle_timeout:
            self.close()
        else:
            self._timer = asyncio.get_running_loop().call_later(
                self.relay.idle_timeout - idle, self._check_idle)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._timer.cancel()
        self._replies.cancel()
        self.target.close()
        relay = self.relay
        relay.sessions.pop((id(self.listener), self.source), None)
        relay.host.connections.forget(self)
        report = SessionReport(self.number, describe(self.source) if self.source else "?",
                               relay.target_url, self.up[0], self.down[0], self.up[1],
                               self.down[1], time.monotonic() - self.started)
        log.info("session %d closed: %s -> %s, %d datagrams (%d bytes) up, %d datagrams "
                 "(%d bytes) down, %.3f s", report.number, report.source, report.target,
                 report.datagrams_up, report.bytes_up, report.datagrams_down,
                 report.bytes_down, report.duration_s)

    # the host's stop (``trunkline.host.Connection``): nothing to finish, replies need the
    # listening socket, which is closed by then
    def shutdown(self) -> None:
        self.close()

    def abort(self) -> None:
        self.close()


class _ListeningSocket(Listener):
    def __init__(self, endpoint: DatagramEndpoint, task: asyncio.Task[None]) -> None:
        self.endpoint = endpoint
        self.address = endpoint.address
        self._task = task

    def close(self) -> None:
        self.endpoint.close()

    async def wait_closed(self) -> None:
        await self.endpoint.wait_closed()
        await asyncio.wait([self._task], timeout=1.0)


class DatagramRelay(HostedServer):
    """Datagrams between ``listen`` addresses and ``target``, a session per source."""

    def __init__(self, target: Address, *, listen: Sequence[Address],
                 listen_options: ListenOptions = ListenOptions(),
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_sessions: int = DEFAULT_MAX_SESSIONS, on_data: OnData | None = None,
                 shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        self.target = target
        self.target_url = format_address(target)
        self.listen_options = listen_options
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.on_data = on_data
        self.sessions: dict[tuple[int, Identity | None], _Session] = {}
        self._numbers = itertools.count(1)
        self._full = RateLimitedLog(log, 10.0)
        self._unanswerable_logged = False
        self.host = ServiceHost([Endpoint(a, self._binder(a)) for a in listen],
                                shutdown_timeout=shutdown_timeout)

    @property
    def address(self) -> Address:
        return self.host.addresses[0]

    @property
    def url(self) -> str:
        return format_address(self.address)

    @property
    def listener(self) -> Listener | None:
        return self.host.listeners[0] if self.host.listeners else None

    def _binder(self, address: Address):  # type: ignore[no-untyped-def]
        async def bind() -> Listener:
            endpoint = await bind_datagram(address, options=self.listen_options)
            task = asyncio.get_running_loop().create_task(self._serve(endpoint))
            return _ListeningSocket(endpoint, task)
        return bind

    async def _serve(self, listener: DatagramEndpoint) -> None:
        async for data, source in listener:
            if self.host.connections.draining:
                return
            answerable: Identity | None = source
            if isinstance(source, UnixIdentity) and not source.path:
                answerable = None
                if not self._unanswerable_logged:
                    self._unanswerable_logged = True
                    log.warning("a sender on %s has no address: its datagrams are relayed, "
                                "replies to them dropped", format_address(listener.address))
            session = self.sessions.get((id(listener), answerable))
            if session is None:
                session = await self._open(listener, answerable)
                if session is None:
                    continue
            await session.forward(data)

    async def _open(self, listener: DatagramEndpoint, source: Identity | None
                    ) -> _Session | None:
        if len(self.sessions) >= self.max_sessions:
            self._full.warning(f"{self.max_sessions} sessions open: a datagram from a new "
                               f"source ({describe(source)}) was dropped")
            return None
        try:
            target = await open_datagram(self.target)
        except (TrunklineError, OSError) as exc:
            log.warning("cannot open a session to %s: %s", self.target_url, exc)
            return None
        session = _Session(self, next(self._numbers), listener, source, target)
        self.sessions[(id(listener), source)] = session
        self.host.connections.add(session)
        return session


async def start_datagram_relay(listen_url: str | Address | Sequence[str | Address],
                               target_url: str | Address, *,
                               listen_options: ListenOptions | None = None,
                               idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                               max_sessions: int = DEFAULT_MAX_SESSIONS,
                               on_data: OnData | None = None,
                               shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
                               ) -> DatagramRelay:
    """Listen on datagram ``listen_url`` (udp, unixgram; one or several) and relay each
    source's datagrams to ``target_url`` and its replies back. Returns the started relay."""
    urls = [listen_url] if isinstance(listen_url, str | Address) else list(listen_url)
    listen = [parse_address(u) if isinstance(u, str) else u for u in urls]
    target = parse_address(target_url) if isinstance(target_url, str) else target_url
    for address in (*listen, target):
        if not is_datagram(address):
            raise UnsupportedError(f"{format_address(address)} is a stream address; a "
                                   "datagram relay needs udp or unixgram on both sides "
                                   "(stream to stream: start_relay)")
    if not listen:
        raise UnsupportedError("start_datagram_relay() needs an address to listen on")
    relay = DatagramRelay(target, listen=listen, listen_options=listen_options or
                          ListenOptions(), idle_timeout=idle_timeout, max_sessions=max_sessions,
                          on_data=on_data, shutdown_timeout=shutdown_timeout)
    return await relay.start()


__all__ = ["DEFAULT_IDLE_TIMEOUT", "DEFAULT_MAX_SESSIONS", "DatagramRelay", "SessionReport",
           "start_datagram_relay"]
