"""``trunkline ws URL``: a WebSocket session from the shell (websocat-like).

Each stdin line is one text message; each message received is written to stdout followed
by a newline. ``--binary`` sends stdin in binary messages (each read, not each line) and
writes received messages as they are. After stdin ends, replies are awaited for ``--wait``
seconds (or until the server closes), then the WebSocket closes with 1000.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import click

from .. import _loop
from ..address import format_address, parse_http_url
from ..aio.by_name import aclose_shared_resolvers
from ..aio.websocket import WebSocket
from ..client.websocket import websocket
from ..errors import AddressError, TrunklineError, WebSocketClosed
from ..registry.ranking import KINDS
from ..registry.url import RegistryURL
from ..trace import Tracer, describe_event
from ._support import fail, report, restore_blocking, saved_blocking
from .exits import Exit, exit_help
from .hints import suggest_http_url, with_suggestion
from .main import cli
from .registry import registry_option
from .stdio import CHUNK, Output, open_stdin

EXAMPLES = f"""\b
Examples:
  echo hello | trunkline ws ws://127.0.0.1:8000/ws
  trunkline ws ws+unix://%2Frun%2Fapp.sock/chat             (interactive: type, Ctrl-D ends)
  trunkline ws ws+unix://%40app/ws -p chat -H 'Authorization: Bearer t'
  trunkline ws ws://app.internal/ws --via unix:///run/app.sock  (Host: app.internal)
  trunkline ws ws+fifo://%2Ftmp%2Fapp.fifo/ws --binary < frame.bin > reply.bin
  trunkline ws wss://localhost:8443/ws --cacert ca.pem --wait 5
  trunkline serve chat --on unix:@chat &  trunkline ws ws+unix://%40chat/   (a chat room)
  trunkline ws ws+svc://chat/ --prefer tcp       (by name: see `trunkline resolve chat`)

\b
Text mode (default): each stdin line, without its newline, is one text message; each
message received goes to stdout followed by a newline. --binary: each read from stdin is
one binary message; messages received are written as they are. After stdin ends, replies
are awaited for --wait seconds (default 1; 0 closes at once), or until the server closes;
then the WebSocket closes with 1000. A server closing with a code other than 1000 or
1001 exits with 56 and names the code.

{exit_help(Exit.OK, Exit.USAGE, Exit.BAD_ADDRESS, Exit.RESOLVE, Exit.CONNECT, Exit.WEIRD_REPLY,
           Exit.TIMEOUT, Exit.TLS, Exit.CERTIFICATE, Exit.RECEIVE, Exit.INTERRUPTED)}
Writing to a reader that went away (| head) is not an error: the command ends, status 0."""


@dataclass(frozen=True)
class WsOptions:
    url: str
    binary: bool = False
    wait: float = 1.0
    timeout: float = 10.0
    headers: tuple[tuple[str, str], ...] = ()
    subprotocols: tuple[str, ...] = ()
    via: str | None = None
    cacert: str | None = None
    insecure: bool = False
    ping_interval: float | None = None
    max_size: int = 1024 * 1024
    max_fragments: int = 4096
    compression: bool = True
    trace: bool = False
    prefer: str | None = None  # ws+svc://: a socket kind to put first
    registry: str | None = None  # ws+svc://: the registry URL


class _NotText(TrunklineError):
    """A stdin line that is not UTF-8 in text mode."""


@cli.command("ws", epilog=EXAMPLES)
@click.argument("url")
@click.option("-b", "--binary", is_flag=True,
              help="Send stdin as binary messages (chunks, not lines); write replies raw.")
@click.option("--wait", type=float, default=1.0, show_default=True, metavar="SECONDS",
              help="After stdin ends, wait this long for replies before closing.")
@click.option("--timeout", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="Give up opening (connect, TLS, handshake) after this long (exit 28).")
@click.option("-H", "--header", "headers", multiple=True, metavar="'Name: value'",
              help="Add a handshake request header (repeatable).")
@click.option("-p", "--subprotocol", "subprotocols", multiple=True, metavar="NAME",
              help="Offer this subprotocol (repeatable, in order of preference).")
@click.option("--via", metavar="ADDRESS",
              help="Connect to ADDRESS (unix:///p, unix:@name, tcp://h:p, fifo:///p); "
                   "the URL still gives Host and path.")
@click.option("--cacert", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Trust this CA bundle (PEM) for wss:// instead of the system's.")
@click.option("-k", "--insecure", is_flag=True, help="Do not verify the TLS certificate.")
@click.option("--ping-interval", type=float, default=None, metavar="SECONDS",
              help="Send a keepalive ping this often (a missing pong ends the session).")
@click.option("--max-size", type=click.IntRange(min=1), default=1024 * 1024,
              show_default=True, metavar="BYTES",
              help="Largest message accepted from the server (1009 beyond).")
@click.option("--max-fragments", type=click.IntRange(min=1), default=4096, show_default=True,
              metavar="N", help="Most frames one message from the server may come in.")
@click.option("--no-compression", is_flag=True, help="Do not offer permessage-deflate.")
@click.option("--trace", is_flag=True, help="Write each step (upgrade, messages, close) "
                                            "to stderr as it happens.")
@click.option("--prefer", type=click.Choice(KINDS), default=None,
              help="ws+svc://NAME: put this socket kind first where reachable.")
@registry_option
def ws_command(url: str, binary: bool, wait: float, timeout: float, headers: tuple[str, ...],
               subprotocols: tuple[str, ...], via: str | None, cacert: str | None,
               insecure: bool, ping_interval: float | None, max_size: int,
               max_fragments: int, no_compression: bool, trace: bool, prefer: str | None,
               registry: RegistryURL | None) -> None:
    """Open a WebSocket to URL: stdin lines become messages, messages go to stdout."""
    if wait < 0:
        raise click.BadParameter("must be >= 0", param_hint="--wait")
    try:
        parse_http_url(url)
    except AddressError as exc:
        fail("ws", str(with_suggestion(exc, suggest_http_url(url, "ws"))), Exit.BAD_ADDRESS)
    pairs = []
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{header!r} is not 'Name: value'", param_hint="-H")
        pairs.append((name.strip(), value.strip()))
    options = WsOptions(url, binary, wait, timeout, tuple(pairs), subprotocols, via, cacert,
                        insecure, ping_interval, max_size, max_fragments, not no_compression,
                        trace, prefer, None if registry is None else str(registry))
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    state = saved_blocking()
    try:
        code = _loop.run(session(options))
    except KeyboardInterrupt:
        restore_blocking(state)
        raise SystemExit(Exit.INTERRUPTED) from None
    except _NotText as exc:
        restore_blocking(state)
        fail("ws", str(exc), Exit.USAGE)
    except (TrunklineError, OSError, ValueError) as exc:
        restore_blocking(state)
        if isinstance(exc, ValueError) and not isinstance(exc, TrunklineError):
            fail("ws", str(exc), Exit.USAGE)
        report("ws", exc, address=_dial_address(options), timeout_hint="raise --timeout")
    restore_blocking(state)
    raise SystemExit(code)


def _dial_address(options: WsOptions) -> str | None:
    """The stream address the session dials, for the fix in a connect error."""
    if options.via is not None:
        return options.via
    try:
        return format_address(parse_http_url(options.url).transport)
    except AddressError:
        return None


async def session(options: WsOptions) -> int:
    """Run one session; the exit status."""
    tracer = None
    if options.trace:
        tracer = Tracer(lambda event: click.echo(f"* {describe_event(event)}", err=True),
                        keep=False)
    verify: bool | str = True  # the TLS context is made only for wss
    if options.insecure:
        verify = False
    elif options.cacert:
        verify = options.cacert
    try:
        ws = await websocket(options.url, transport=options.via,
                             subprotocols=options.subprotocols or None,
                             headers=list(options.headers), max_size=options.max_size,
                             max_fragments=options.max_fragments,
                             compression=options.compression,
                             ping_interval=options.ping_interval, open_timeout=options.timeout,
                             verify=verify, tracer=tracer, registry=options.registry,
                             prefer=options.prefer)
    finally:
        await aclose_shared_resolvers()  # ws+svc:// is resolved: the registry is not needed
    stdin = await open_stdin()
    stdout = await Output.open()
    up = asyncio.ensure_future(_upstream(ws, stdin, options.binary))
    down = asyncio.ensure_future(_downstream(ws, stdout, options.binary))
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if up.done() and not up.cancelled() and up.exception() is None and not down.done():
            await asyncio.wait({down}, timeout=options.wait)  # stdin ended: replies' turn
        for task in (up, down):
            if task.done() and not task.cancelled():
                error = task.exception()
                if isinstance(error, WebSocketClosed) and task is up and down.done():
                    continue  # the server closed while we sent: down tells how
                if error is not None:
                    raise error
    except BrokenPipeError:
        pass  # our reader went away (| head): stop quietly
    except WebSocketClosed as closed:
        click.echo(f"trunkline ws: {closed}", err=True)
        return Exit.RECEIVE
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        with contextlib.suppress(Exception):
            await ws.close(1000)
        with contextlib.suppress(BrokenPipeError, ConnectionError):
            await stdout.aclose()
    return Exit.OK


async def _upstream(ws: WebSocket, stdin: asyncio.StreamReader, binary: bool) -> None:
    if binary:
        while chunk := await stdin.read(CHUNK):
            await ws.send(chunk)
        return
    number = 0
    while line := await stdin.readline():
        number += 1
        line = line[:-1] if line.endswith(b"\n") else line
        line = line[:-1] if line.endswith(b"\r") else line
        try:
            text = line.decode()
        except UnicodeDecodeError:
            raise _NotText(f"stdin line {number} is not UTF-8 text; use --binary to send "
                           "bytes") from None
        await ws.send(text)


async def _downstream(ws: WebSocket, stdout: Output, binary: bool) -> None:
    async for message in ws:  # ends on a normal close; raises WebSocketClosed otherwise
        data = message.encode() if isinstance(message, str) else message
        stdout.write(data if binary else data + b"\n")
        await stdout.drain()


__all__ = ["WsOptions", "session", "ws_command"]
