"""``trunkline connect URL``: stdin to the socket, the socket to stdout (netcat-like)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass

import click

from .. import _loop
from ..address import Address, ServiceAddress, format_address, is_datagram
from ..aio.by_name import aclose_shared_resolvers
from ..aio.datagram import open_datagram
from ..aio.servers import connect
from ..aio.stream import Stream
from ..errors import PeerNotAllowedError, TransportError, TrunklineError, os_error_words
from ..registry.ranking import KINDS
from ..registry.url import RegistryURL
from ..relay.stream import OnData
from ..transport import ConnectOptions
from ..transport.base import refusal_hint
from ._support import AddressParam, report, restore_blocking, saved_blocking
from .exits import Exit, exit_help
from .main import cli
from .registry import registry_option
from .stdio import CHUNK, Output, open_stdin

EXAMPLES = f"""\b
Examples:
  echo hi | trunkline connect unix:///tmp/echo.sock
  trunkline connect tcp://127.0.0.1:7000 < request.bin > reply.bin
  printf 'one\\ntwo\\n' | trunkline connect udp://127.0.0.1:7001 --wait 0.5
  trunkline connect fifo:///tmp/echo.fifo          (interactive: type, Ctrl-D ends)
  echo hi | trunkline connect svc://users          (by name: the fastest socket from here)
  trunkline connect svc://metrics --datagram --prefer udp

\b
svc://NAME: the registry's live instances of NAME, ranked for this caller (`trunkline
resolve NAME` shows how); an address that refuses is skipped for the next one, then the
next instance, within --timeout. No live instance: exit 6; registry unreachable with
nothing cached: exit 7.

\b
Stream kinds (tcp, tls, unix, fifo, fd): bytes pass unchanged both ways. At the end of
stdin the sending side is half-closed (the peer reads EOF, its replies still arrive);
TLS cannot half-close, so the connection stays open. The command exits when the peer
closes, or --wait seconds after stdin ends if --wait is given. A peer that resets the
connection is an error (exit 56), as it is for socat.
\b
Datagram kinds (udp, unixgram): each stdin line, without its newline, is one datagram.
Each reply datagram is written to stdout followed by a newline, unless it already ends
with one. After stdin ends, replies are awaited for --wait seconds (default 1).

{exit_help(Exit.OK, Exit.USAGE, Exit.BAD_ADDRESS, Exit.RESOLVE, Exit.CONNECT, Exit.TIMEOUT,
           Exit.TLS, Exit.CERTIFICATE, Exit.RECEIVE, Exit.INTERRUPTED)}
Writing to a reader that went away (| head) is not an error: the command ends, status 0."""


@cli.command("connect", epilog=EXAMPLES)
@click.argument("url", type=AddressParam())
@click.option("--wait", type=float, default=None, metavar="SECONDS",
              help="After stdin ends, wait at most this long for the peer "
                   "(default: until it closes; 1 s for datagrams).")
@click.option("--timeout", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="Give up connecting after this long (exit 28).")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False),
              help="Trust this CA bundle (PEM) for tls:// instead of the system's.")
@click.option("--prefer", type=click.Choice(KINDS), default=None,
              help="svc://NAME: put this socket kind first where reachable.")
@click.option("--datagram", is_flag=True,
              help="svc://NAME: send datagrams to the service's udp/unixgram address.")
@registry_option
def connect_command(url: Address, wait: float | None, timeout: float, cafile: str | None,
                    prefer: str | None, datagram: bool, registry: RegistryURL | None) -> None:
    """Connect to URL: stdin goes to the socket, what comes back goes to stdout."""
    if wait is not None and wait < 0:
        raise click.BadParameter("must be >= 0", param_hint="--wait")
    by_name = isinstance(url, ServiceAddress)
    if not by_name and (prefer or datagram or registry):
        raise click.UsageError("--prefer, --datagram and --registry are for svc://NAME "
                               "(example: trunkline connect svc://users --prefer tcp)")
    names = NameOptions(prefer, None if registry is None else str(registry))
    context = None
    if cafile is not None:
        context = ssl.create_default_context(cafile=cafile)
    options = ConnectOptions(timeout=timeout, ssl=context)
    # asyncio's own chatter (e.g. about half-close under TLS) is not for netcat users
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    state = saved_blocking()
    try:
        if is_datagram(url) or datagram:
            _loop.run(_datagrams(url, options, 1.0 if wait is None else wait, names))
        else:
            _loop.run(_stream(url, options, wait, names))
    except KeyboardInterrupt:
        restore_blocking(state)
        raise SystemExit(Exit.INTERRUPTED) from None
    except (TrunklineError, OSError) as exc:
        restore_blocking(state)
        report("connect", exc, address=url, timeout_hint="raise --timeout")
    restore_blocking(state)
    raise SystemExit(Exit.OK)


@dataclass(frozen=True)
class NameOptions:
    prefer: str | None = None
    registry: str | None = None


async def _stream(address: Address, options: ConnectOptions, wait: float | None,
                  names: NameOptions = NameOptions()) -> None:
    try:
        stream = await connect(address, options=options, prefer=names.prefer,
                               registry=names.registry)
    finally:
        await aclose_shared_resolvers()  # the name is resolved: the registry is not needed
    await pump_stdio(stream, format_address(address), wait)


async def pump_stdio(stream: Stream, where: str, wait: float | None,
                     on_data: OnData | None = None) -> None:
    """stdin to ``stream``, ``stream`` to stdout, until both directions end (``wait``: how
    long the peer has after stdin ended). ``on_data`` sees each chunk (``relay -v``); ``up``
    is stdin to the stream."""
    hint = refusal_hint(stream.transport)  # now: the server's credentials go with the socket
    received = False
    offsets = {True: 0, False: 0}

    def seen(up: bool, chunk: bytes) -> None:
        if on_data is not None:
            on_data(1, up, memoryview(chunk), offsets[up])
            offsets[up] += len(chunk)
    stdin = await open_stdin()
    stdout = await Output.open()

    async def upstream() -> None:
        while chunk := await stdin.read(CHUNK):
            seen(True, chunk)
            stream.write(chunk)
            await stream.drain()
        if stream.can_write_eof():
            stream.write_eof()

    async def downstream() -> None:
        nonlocal received
        while chunk := await stream.read(CHUNK):
            received = True
            seen(False, chunk)
            stdout.write(chunk)
            await stdout.drain()
        broken = stream.broken
        if broken is not None:  # a reset, not a close: say so (socat does too)
            raise TransportError(broken.errno, f"{where}: {os_error_words(broken)}")

    up = asyncio.ensure_future(upstream())
    down = asyncio.ensure_future(downstream())
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if up.done() and not up.cancelled() and up.exception() is None and not down.done():
            await asyncio.wait({down}, timeout=wait)  # stdin ended; the peer has the floor
        if hint is not None and not received and (down.done() or _failed(up)):
            raise PeerNotAllowedError(hint)  # closed on us before a byte
        for task in (up, down):
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    except BrokenPipeError:
        pass  # our reader went away (| head): stop quietly
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        stream.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(stream.wait_closed(), 1.0)
        with contextlib.suppress(BrokenPipeError, ConnectionError):
            await stdout.aclose()


def _failed(task: asyncio.Future[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


async def _datagrams(address: Address, options: ConnectOptions, wait: float,
                     names: NameOptions = NameOptions()) -> None:
    try:
        endpoint = await open_datagram(address, timeout=options.timeout, prefer=names.prefer,
                                       registry=names.registry)
    finally:
        await aclose_shared_resolvers()
    stdin = await open_stdin()
    stdout = await Output.open()

    async def replies() -> None:
        while True:
            data, _source = await endpoint.recv()
            stdout.write(data if data.endswith(b"\n") else data + b"\n")
            await stdout.drain()

    receiver = asyncio.ensure_future(replies())
    try:
        while line := await stdin.readline():
            if receiver.done():
                break
            await endpoint.send(line[:-1] if line.endswith(b"\n") else line)
        if not receiver.done():
            await asyncio.wait({receiver}, timeout=wait)
        if receiver.done() and not receiver.cancelled() and receiver.exception() is not None:
            raise receiver.exception()  # type: ignore[misc]
    except BrokenPipeError:
        pass
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
        await endpoint.aclose()
        with contextlib.suppress(BrokenPipeError, ConnectionError):
            await stdout.aclose()
