"""The tour's legs: one per way of talking, each run against the tour's echo service.

A leg says which addresses the shared echo service should listen on for it
(``echo_addresses``), then ``run`` talks to them and returns a ``LegResult``. A leg that needs
a service of its own (HTTP, WebSocket) starts it inside ``run`` and registers its cleanup on
``ctx.stack``, so the tour still closes everything it opened. Add legs with ``register_leg``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..address import (
    Address,
    Identity,
    SocketIdentity,
    TcpAddress,
    UdpAddress,
    UnixAddress,
    UnixIdentity,
    format_address,
)
from ..aio.datagram import DatagramEndpoint, open_datagram
from ..aio.servers import connect
from ..aio.stream import Stream
from ..errors import ProtocolError
from ..trace.events import Step, Tracer
from .echo import ServerView, WatchedEcho
from .model import Latency, LegResult, StepTiming


@dataclass
class TourContext:
    """What every leg may use. ``stack`` closes whatever legs start, before the temp dir goes."""

    tmpdir: Path
    rounds: int
    size: int
    timeout: float
    echo: WatchedEcho
    stack: contextlib.AsyncExitStack
    #: the echo service's tracer: ACCEPT, the first exchange and CLOSE, server side
    server_tracer: Tracer = field(default_factory=Tracer)
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    #: abstract socket names bound for the tour; checked to be gone at the end
    abstract_names: list[str] = field(default_factory=list)
    progress: Callable[[str], None] = lambda message: None

    def payload(self) -> bytes:
        """The message every round trip carries: ``size`` bytes, not all alike."""
        return (b"trunkline tour " * (self.size // 15 + 1))[: self.size]


class Leg(abc.ABC):
    """One way of talking. ``name`` is the ``--only`` key."""

    name: str
    title: str
    kind: str = "stream"

    def echo_addresses(self, ctx: TourContext) -> list[str]:
        """Addresses the shared echo service should listen on for this leg."""
        return []

    @abc.abstractmethod
    async def run(self, ctx: TourContext, bound: list[Address]) -> LegResult:
        """Talk to ``bound`` (this leg's echo addresses, as bound) and report."""

    def new_result(self) -> LegResult:
        return LegResult(self.name, self.title, self.kind)


class StreamLeg(Leg):
    """Connect, send one message and read it back, time ``rounds`` round trips, half-close."""

    def __init__(self, name: str, title: str, listen: Callable[[TourContext], str],
                 dial: Callable[[Address], str] = format_address) -> None:
        self.name = name
        self.title = title
        self._listen = listen
        self._dial = dial

    def echo_addresses(self, ctx: TourContext) -> list[str]:
        return [self._listen(ctx)]

    async def run(self, ctx: TourContext, bound: list[Address]) -> LegResult:
        result = self.new_result()
        result.server_url = format_address(bound[0])
        result.client_url = url = self._dial(bound[0])
        tracer = Tracer()
        stream = await connect(url, tracer=tracer, timeout=ctx.timeout)
        conn = max((e.conn for e in tracer.events), default=0)
        if getattr(stream, "tracer", None) is not None:
            stream.tracer = None  # the leg records its own send/receive/close below
        try:
            result.client_local, result.client_peer = stream.local, stream.peer
            payload = ctx.payload()
            async with asyncio.timeout(ctx.timeout):
                start = time.monotonic_ns()
                stream.write(payload)
                await stream.drain()
                tracer.record(Step.SEND, "client", start, conn, bytes=len(payload))
                start = time.monotonic_ns()
                reply = await stream.readexactly(len(payload))
                tracer.record(Step.RECEIVE, "client", start, conn, bytes=len(reply))
                _check(reply, payload)
                view = await ctx.echo.views.get()
            _take_view(result, view)
            ctx.progress(f"{self.title}: {ctx.rounds} round trips of {len(payload)} bytes")
            async with asyncio.timeout(ctx.timeout + ctx.rounds * 0.01):
                result.latency = await _stream_rounds(stream, payload, ctx.rounds)
            async with asyncio.timeout(ctx.timeout):
                start = time.monotonic_ns()
                if stream.can_write_eof():
                    stream.write_eof()
                    rest = await stream.read()
                    if rest:
                        raise ProtocolError(f"{len(rest)} unexpected bytes after the last echo")
                    how = "half-close (EOF sent), the server's EOF read, then closed"
                else:
                    how = "closed (this kind cannot half-close)"
                await stream.aclose()
                tracer.record(Step.CLOSE, "client", start, conn, how=how)
                await view.done.wait()  # the server's side of the trace is complete
        finally:
            if not stream.transport.is_closing():
                stream.abort()
        events = tracer.events + [e for e in ctx.server_tracer.events
                                  if view.conn and e.conn == view.conn]
        events.sort(key=lambda e: e.end_ns)  # one timeline: both sides share the clock
        result.steps = [StepTiming.from_event(e) for e in events]
        return result


class DatagramLeg(Leg):
    """Send one datagram and read the echo, time ``rounds`` round trips, close."""

    kind = "datagram"

    def __init__(self, name: str, title: str, listen: Callable[[TourContext], str]) -> None:
        self.name = name
        self.title = title
        self._listen = listen

    def echo_addresses(self, ctx: TourContext) -> list[str]:
        return [self._listen(ctx)]

    async def run(self, ctx: TourContext, bound: list[Address]) -> LegResult:
        result = self.new_result()
        result.server_url = result.client_url = url = format_address(bound[0])
        result.server_local = _bound_identity(bound[0])
        tracer = Tracer()
        endpoint = await open_datagram(url, timeout=ctx.timeout, tracer=tracer)
        conn = endpoint.conn
        endpoint.tracer = None  # the leg records its own send/receive/close below
        try:
            result.client_local = endpoint.local
            result.client_peer = endpoint.peer
            payload = ctx.payload()
            async with asyncio.timeout(ctx.timeout):
                start = time.monotonic_ns()
                await endpoint.send(payload)
                tracer.record(Step.SEND, "client", start, conn, bytes=len(payload))
                start = time.monotonic_ns()
                reply, _source = await endpoint.recv()
                tracer.record(Step.RECEIVE, "client", start, conn, bytes=len(reply))
                _check(reply, payload)
                view = await ctx.echo.views.get()
            result.server_peer = view.peer
            ctx.progress(f"{self.title}: {ctx.rounds} round trips of {len(payload)} bytes")
            async with asyncio.timeout(ctx.timeout + ctx.rounds * 0.01):
                result.latency = await _datagram_rounds(endpoint, payload, ctx.rounds)
            result.notes.append("datagrams: no connection, no delivery guarantee; each "
                                "message is one send and one receive")
        finally:
            start = time.monotonic_ns()
            await endpoint.aclose()
            tracer.record(Step.CLOSE, "client", start, conn, how="socket closed (no peer "
                          "is told: datagram sockets have no connection to end)")
        result.steps = [StepTiming.from_event(e) for e in tracer.events]
        return result


async def _stream_rounds(stream: Stream, payload: bytes, rounds: int) -> Latency | None:
    samples: list[int] = []
    clock = time.perf_counter_ns
    size = len(payload)
    for _ in range(rounds):
        start = clock()
        stream.write(payload)
        reply = await stream.readexactly(size)
        samples.append(clock() - start)
        if reply != payload:
            _check(reply, payload)
    return Latency.from_samples(samples, size)


async def _datagram_rounds(endpoint: DatagramEndpoint, payload: bytes, rounds: int
                           ) -> Latency | None:
    samples: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        start = clock()
        await endpoint.send(payload)
        reply, _ = await endpoint.recv()
        samples.append(clock() - start)
        if reply != payload:
            _check(reply, payload)
    return Latency.from_samples(samples, len(payload))


def _check(reply: bytes, payload: bytes) -> None:
    if reply != payload:
        raise ProtocolError(f"the echo differs from what was sent ({len(reply)} bytes back, "
                            f"{len(payload)} sent)")


def _take_view(result: LegResult, view: ServerView) -> None:
    result.server_local, result.server_peer = view.local, view.peer
    result.peer_process = view.credentials


def _bound_identity(address: Address) -> Identity | None:
    if isinstance(address, UdpAddress):
        return SocketIdentity(address.host, address.port, "udp")
    if isinstance(address, TcpAddress):
        return SocketIdentity(address.host, address.port, "tcp")
    if isinstance(address, UnixAddress):
        return UnixIdentity(address.path, address.abstract, address.datagram)
    return None


# --------------------------------------------------------------------------- the default legs


def _abstract(ctx: TourContext) -> str:
    name = f"trunkline-tour-{os.getpid()}-{ctx.token}"
    ctx.abstract_names.append(name)
    return f"unix:@{name}"


def _by_name(address: Address) -> str:
    """Dial TCP by name, so the tour shows a resolve step: tcp://localhost:PORT."""
    assert isinstance(address, TcpAddress)
    return f"tcp://localhost:{address.port}"


LEG_FACTORIES: list[Callable[[], Leg]] = [
    lambda: StreamLeg("tcp", "TCP loopback", lambda ctx: "tcp://127.0.0.1:0", _by_name),
    lambda: StreamLeg("unix", "Unix socket (path)",
                      lambda ctx: f"unix://{ctx.tmpdir / 'echo.sock'}"),
    lambda: StreamLeg("abstract", "Unix socket (abstract)", _abstract),
    lambda: StreamLeg("fifo", "FIFO pair", lambda ctx: f"fifo://{ctx.tmpdir / 'echo.fifo'}"),
    lambda: DatagramLeg("udp", "UDP loopback", lambda ctx: "udp://127.0.0.1:0"),
]


def register_leg(factory: Callable[[], Leg]) -> None:
    """Add a leg to every tour from now on (e.g. HTTP over each transport)."""
    LEG_FACTORIES.append(factory)


def default_legs() -> list[Leg]:
    return [make() for make in LEG_FACTORIES]
