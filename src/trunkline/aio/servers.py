"""The public async API: ``connect``, ``serve`` and the ``Server`` they share.

Both are awaited (``stream = await trunkline.connect(url)``) or entered, which closes what
they opened on the way out::

    async with trunkline.connect("unix:///run/app.sock") as stream:
        await stream.send(b"hi")
    async with trunkline.serve(handler, "tcp://127.0.0.1:0", "unix:@app") as server:
        await server.serve_forever()

(``async with await ...``, the older spelling, works too.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from ..address import (
    Address,
    ServiceAddress,
    TcpAddress,
    format_address,
    is_datagram,
    parse_address,
)
from ..errors import UnsupportedError
from ..host import DEFAULT_SHUTDOWN_TIMEOUT, Hook, HostedServer, ServiceHost, stream_endpoint
from ..registry.hook import registration_hook
from ..registry.model import DEFAULT_TTL
from ..registry.ranking import Candidate
from ..registry.store import Store
from ..trace.events import Step, Tracer
from ..transport import ConnectOptions, Listener, ListenOptions, open_transport
from ..transport.base import local_identity, peer_identity
from ..transport.tcp import Resolver
from .by_name import RegistryInput, dial, discover, resolver_for
from .datagram_server import DatagramHandler, datagram_endpoint
from .stream import DEFAULT_LIMIT, Stream, StreamProtocol

log = logging.getLogger("trunkline.server")

StreamHandler = Callable[[Stream], Awaitable[None]]


def as_address(url: str | Address) -> Address:
    return parse_address(url) if isinstance(url, str) else url


class _Closable(Protocol):
    async def aclose(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class Opening(Generic[C]):
    """What ``connect`` and ``serve`` return: ``await`` it for the opened object, or
    ``async with`` it to have that object closed (``aclose``) on the way out."""

    __slots__ = ("_coro", "_opened")

    def __init__(self, coro: Coroutine[Any, Any, C]) -> None:
        self._coro = coro
        self._opened: C | None = None

    def __await__(self) -> Generator[Any, None, C]:
        return self._coro.__await__()

    async def __aenter__(self) -> C:
        self._opened = opened = await self._coro  # opened: a started server, a stream
        return opened

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            await opened.aclose()


def connect(url: str | Address, *, timeout: float | None = 10.0,
            options: ConnectOptions | None = None, limit: int = DEFAULT_LIMIT,
            tracer: Tracer | None = None, resolver: Resolver | None = None,
            registry: RegistryInput = None, prefer: str | None = None) -> Opening[Stream]:
    """Open a byte stream to any stream address (tcp, tls, unix, fifo, fd), or to a
    service by name (``svc://users``: the best address for this caller, falling through
    to the next on a refusal, within ``timeout``; ``prefer`` a kind, e.g. ``"tcp"``):
    ``stream = await connect(url)``, or ``async with connect(url) as stream:`` (closed on
    the way out).

    ``resolver`` replaces the system resolver for host names (e.g.
    ``trunkline.resolve.DnsResolver("127.0.0.1:5353")``); ``registry`` is the registry
    URL or a ``trunkline.Resolver`` for service names (default: one shared per loop on
    ``$TRUNKLINE_REGISTRY`` / the user's registry file)."""
    return Opening(_connect(url, timeout, options, limit, tracer, resolver, registry, prefer))


async def _connect(url: str | Address, timeout: float | None, options: ConnectOptions | None,
                   limit: int, tracer: Tracer | None, resolver: Resolver | None,
                   registry: RegistryInput = None, prefer: str | None = None) -> Stream:
    address = as_address(url)
    opts = options or ConnectOptions(timeout=timeout)
    conn = tracer.new_connection() if tracer is not None else 0
    if isinstance(address, ServiceAddress):
        names = resolver_for(registry)
        answer = await discover(names, address.name, prefer=prefer, tracer=tracer, conn=conn)

        async def open_one(candidate: Candidate, left: float | None) -> Stream:
            # TLS reads into our buffer, a plain socket takes uvloop's reads (transport.reads)
            kind = StreamProtocol.for_transport(isinstance(candidate.address, TcpAddress)
                                                and candidate.address.tls)
            transport, protocol = await open_transport(
                candidate.address, lambda: kind(limit),
                ConnectOptions(left, opts.ssl, opts.server_hostname), tracer, conn, resolver)
            assert isinstance(protocol, StreamProtocol)
            return Stream(transport, protocol, tracer, conn)

        stream, _ = await dial(answer, open_one, names, timeout=opts.timeout, tracer=tracer,
                               conn=conn)
        return stream
    # TLS reads into our buffer, a plain socket takes uvloop's reads (transport.reads)
    protocol_class = StreamProtocol.for_transport(isinstance(address, TcpAddress) and address.tls)
    transport, protocol = await open_transport(address, lambda: protocol_class(limit),
                                               opts, tracer, conn, resolver)
    assert isinstance(protocol, StreamProtocol)
    return Stream(transport, protocol, tracer, conn)


class Server(HostedServer):
    """Listeners on many addresses serving one handler, on a ``ServiceHost``. Stopping it
    stops accepting, then waits for (or, after ``grace``, cancels) the handlers still
    running. ``Server(listeners)`` serves listeners bound elsewhere."""

    def __init__(self, listeners: Sequence[Listener] = (), *, host: ServiceHost | None = None,
                 shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        self.host = host if host is not None else ServiceHost(
            listeners=listeners, shutdown_timeout=shutdown_timeout)

    def track(self, task: asyncio.Task[None]) -> None:
        """Count ``task`` as work in flight: stopping waits for it (up to the grace)."""
        self.host.connections.track(task)


def serve(handler: StreamHandler | None, *urls: str | Address,
          options: ListenOptions = ListenOptions(),
          datagram_handler: DatagramHandler | None = None,
          limit: int = DEFAULT_LIMIT, tracer: Tracer | None = None,
          shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
          hooks: Sequence[Hook] = (), name: str | None = None,
          meta: Mapping[str, str] | None = None, ttl: float = DEFAULT_TTL,
          registry: str | Store | None = None) -> Opening[Server]:
    """Serve ``handler(stream)`` for each connection on every stream address, and
    ``datagram_handler(data, source)`` for each datagram on udp/unixgram addresses.
    With ``tracer``, each stream connection records ACCEPT, SEND/RECEIVE and CLOSE.
    With ``name``, the bound addresses are registered as one instance of that service
    (protocol raw, ``meta``, ``ttl``, in ``registry`` or the default one) until the server
    stops: callers reach it as ``svc://name`` (a bad name raises here, before binding).
    ``await`` it for the started ``Server`` (every address bound, ``hooks`` entered), or
    ``async with`` it to have the server stopped (``aclose``) on the way out."""
    if name is not None:
        hooks = [*hooks, registration_hook(name, protocol="raw", meta=meta, ttl=ttl,
                                           registry=registry)]
    return Opening(_serve(handler, urls, options, datagram_handler, limit, tracer,
                          shutdown_timeout, hooks))


async def _serve(handler: StreamHandler | None, urls: tuple[str | Address, ...],
                 options: ListenOptions, datagram_handler: DatagramHandler | None,
                 limit: int, tracer: Tracer | None, shutdown_timeout: float,
                 hooks: Sequence[Hook]) -> Server:
    if not urls:
        raise UnsupportedError("serve() needs at least one address, e.g. 'tcp://127.0.0.1:0'")
    addresses = [as_address(u) for u in urls]
    for address in addresses:
        if is_datagram(address) and datagram_handler is None:
            raise UnsupportedError(f"{format_address(address)} is a datagram address: pass "
                                   "datagram_handler= to serve it")
        if not is_datagram(address) and handler is None:
            raise UnsupportedError(f"{format_address(address)} is a stream address: pass a "
                                   "stream handler to serve it")
    host = ServiceHost(shutdown_timeout=shutdown_timeout, hooks=hooks)
    track = host.connections.track
    loop = asyncio.get_running_loop()

    # Chosen once for every listener: TLS (any listener given a certificate) reads into our
    # buffer, plain sockets take uvloop's reads as bytes (transport.reads.ReadsBothWays).
    server_protocol = _ServerStreamProtocol.for_transport(tls=options.ssl is not None)

    def on_connection() -> StreamProtocol:
        protocol = server_protocol(limit)
        protocol.on_ready = lambda transport: track(
            loop.create_task(run_handler(handler, transport, protocol,  # type: ignore[arg-type]
                                         tracer)))
        return protocol

    for address in addresses:
        if is_datagram(address):
            assert datagram_handler is not None
            host.endpoints.append(datagram_endpoint(address, datagram_handler, options,
                                                    tracer=tracer))
        else:
            host.endpoints.append(stream_endpoint(address, on_connection, options))
    return await Server(host=host).start()


class _ServerStreamProtocol(StreamProtocol):
    on_ready: Callable[[asyncio.Transport], None]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.on_ready(transport)  # type: ignore[arg-type]


async def run_handler(handler: StreamHandler, transport: asyncio.Transport,
                      protocol: StreamProtocol, tracer: Tracer | None = None) -> None:
    """Run ``handler`` on a server-side ``Stream`` over ``transport``: ACCEPT traced, a
    broken or cancelled connection quiet, other failures logged, the stream closed after."""
    conn = 0
    if tracer is not None:
        conn = tracer.new_connection()
        tracer.record(Step.ACCEPT, "server", time.monotonic_ns(), conn,
                      local=str(local_identity(transport)), peer=str(peer_identity(transport)))
    stream = Stream(transport, protocol, tracer, conn, "server")
    try:
        await handler(stream)
    except (ConnectionError, asyncio.CancelledError):
        pass
    except Exception:
        log.exception("handler failed for connection from %s", stream.peer)
    finally:
        with contextlib.suppress(Exception):
            stream.close()
