"""``trunkline relay LISTEN TARGET``: socat/websocat-like bridges.

LISTEN and TARGET are addresses of the grammar, plus three relay-only forms: ``-`` (or
``stdio:``) for this process's stdin/stdout, ``exec:PROGRAM ARGS`` / ``system:COMMAND`` for a
command per connection (TARGET only), and ``ws://``/``wss://`` URLs for a WebSocket side.
Which relay runs follows from the two sides (``_plan``); the work is in ``trunkline.relay``
and, for stdio, in ``relay_stdio``.
"""

from __future__ import annotations

import ssl
import sys
from dataclasses import dataclass
from typing import Any

import click

from .. import _loop
from ..address import Address, ServiceAddress, format_address, is_datagram, parse_http_url
from ..errors import TrunklineError
from ..host import DEFAULT_SHUTDOWN_TIMEOUT
from ..relay.datagram import DEFAULT_IDLE_TIMEOUT, start_datagram_relay
from ..relay.exec import DEFAULT_MAX_PROCESSES, ExecTarget
from ..relay.stream import DEFAULT_BUFFER, OnData, start_relay
from ..relay.websocket import is_websocket_url, start_websocket_relay
from ..transport import ConnectOptions, ListenOptions
from ._support import (
    AddressParam,
    BadAddress,
    listen_flags,
    listen_options,
    ready,
    report,
    setup_logging,
)
from .exits import Exit, exit_help
from .main import cli
from .relay_dump import dumper

EXAMPLES = f"""\b
Examples:
  trunkline relay tcp://127.0.0.1:8000 unix:///run/app.sock     (TCP clients reach a UDS app)
  trunkline relay unix:///tmp/db.sock tcp://10.0.0.5:5432
  trunkline relay fifo:///tmp/app.fifo tcp://127.0.0.1:8000
  trunkline relay unix:@front tcp://127.0.0.1:8000 --allow-uid 1000
  trunkline relay udp://127.0.0.1:5353 unixgram:///run/dns.sock  (a session per source)
  trunkline relay - tcp://127.0.0.1:7000                     (stdin/stdout: socat - TCP:...)
  trunkline relay tcp://127.0.0.1:7000 -                     (one client to stdin/stdout)
  trunkline relay tcp://127.0.0.1:7000 exec:'tr a-z A-Z'     (a process per connection)
  trunkline relay ws://127.0.0.1:8080/ tcp://127.0.0.1:5678  (websocat ws-l: ... tcp:...)
  trunkline relay tcp://127.0.0.1:1234 ws://127.0.0.1:8080/chat
  trunkline relay -v tcp://127.0.0.1:8000 unix:///run/app.sock   (traffic on stderr)

\b
Stream relays: each client accepted on LISTEN gets its own connection to TARGET; bytes
flow both ways. EOF on one side half-closes the other; a pair closes when both
directions have ended. An abstract LISTEN admits only this user's uid unless
--allow-uid/--allow-gid or --allow-any-user say otherwise. One log line per connection
at close (bytes up = client to target, bytes down = target to client). A target that
cannot be reached fails that client's connection (logged), not the relay.

\b
Datagram relays (udp and unixgram on both sides, mixed as you like): each source
address gets a session, a socket of its own towards TARGET, so replies go back to
the source they answer; a session ends after --idle-timeout seconds without traffic.

\b
- or stdio: as LISTEN dials TARGET once and relays it with stdin/stdout (as
trunkline connect); as TARGET it accepts one client, relays it with stdin/stdout and
exits when that connection ends (socat without fork).

\b
exec:PROGRAM ARGS runs PROGRAM (words split as a shell would, no shell) per client,
its stdin and stdout on a socket pair: client bytes are its input, its output goes
back, EOF both ways; system:COMMAND runs COMMAND with /bin/sh -c. At most
--max-processes at once; one still running after its client left is terminated.

\b
ws:// / wss:// (also ws+unix://%2Fpath.sock/ ...): as LISTEN, accept WebSocket
clients (a path other than / is the only one served) and bridge each to a new stream
to TARGET; as TARGET, open a WebSocket per client of the stream LISTEN. Each message
becomes its bytes (text as UTF-8), each chunk read becomes one binary message; a close
half-closes the stream, EOF closes the WebSocket (1000).

\b
-v shows the traffic as text, -x as hex (both: hex with text), on stderr, each chunk
with socat's header: "> DATE TIME  length=N from=A to=B  connection=C" (> LISTEN to
TARGET, < back). socat's address syntax (TCP-LISTEN:8000,fork) gets a "did you mean".
Runs until SIGINT/SIGTERM, then lets relayed connections finish for up to --grace
seconds, aborts the rest (a second signal aborts at once) and exits 0.

{exit_help(Exit.OK, Exit.CANNOT_LISTEN, Exit.USAGE, Exit.BAD_ADDRESS, Exit.CONNECT,
           Exit.RECEIVE)}"""

STDIO_NAMES = ("-", "stdio:", "stdio")
#: socat's spellings of its stdio and exec addresses, for a hint
_SOCAT_STDIO = ("STDIO", "STDIN", "STDOUT", "STDIO:", "-:")


@dataclass(frozen=True)
class Side:
    """One side of the relay as written: an address, stdio, a command or a WebSocket URL."""

    text: str
    address: Address | None = None
    stdio: bool = False
    command: ExecTarget | None = None
    websocket: bool = False


class RelaySide(click.ParamType):  # type: ignore[type-arg]
    name = "SIDE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Side:
        if isinstance(value, Side):
            return value
        text = str(value)
        lowered = text.lower()
        if lowered in STDIO_NAMES:
            return Side(text, stdio=True)
        if text.upper() in _SOCAT_STDIO:
            raise BadAddress(f"{text!r} is socat's spelling; did you mean - (stdin/stdout)?",
                             ctx, param)
        if lowered.startswith(("exec:", "system:")):
            try:
                return Side(text, command=ExecTarget.parse(text))
            except TrunklineError as exc:
                raise BadAddress(str(exc), ctx, param) from None
        if is_websocket_url(text):
            return Side(text, websocket=True)
        if lowered.startswith(("ws-l:", "ws-listen:")):
            rest = text.split(":", 1)[1]
            raise BadAddress(f"{text!r} is websocat's spelling; did you mean ws://{rest}/ "
                             "(as LISTEN)?", ctx, param)
        return Side(text, address=AddressParam().convert(text, param, ctx))


@cli.command("relay", epilog=EXAMPLES, context_settings={"auto_envvar_prefix": "TRUNKLINE_RELAY"})
@click.argument("listen_side", type=RelaySide(), metavar="LISTEN")
@click.argument("target_side", type=RelaySide(), metavar="TARGET")
@listen_flags
@click.option("--timeout", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="Give up connecting to the target after this long.")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False),
              help="Trust this CA bundle (PEM) when the target is tls:// or wss://.")
@click.option("--buffer", "buffer_size", type=click.IntRange(4096), default=DEFAULT_BUFFER,
              show_default=True, help="Bytes read per system call on each side.")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True),
              default=DEFAULT_IDLE_TIMEOUT, show_default=True, metavar="SECONDS",
              help="Datagram relays: end a source's session after this long without "
                   "traffic (socat's -T).")
@click.option("--max-processes", type=click.IntRange(min=1), default=DEFAULT_MAX_PROCESSES,
              show_default=True, metavar="N",
              help="exec:/system: targets: most commands running at once.")
@click.option("-v", "--verbose", "text_dump", is_flag=True,
              help="Show the traffic as text on stderr (socat -v).")
@click.option("-x", "--hex", "hex_dump", is_flag=True,
              help="Show the traffic as hex on stderr (socat -x).")
@click.option("--grace", type=float, default=DEFAULT_SHUTDOWN_TIMEOUT, show_default=True,
              help="Seconds to let open connections finish after a stop signal (a second "
                   "signal aborts them at once).")
@click.option("-q", "--quiet", is_flag=True, help="No per-connection log lines.")
def relay_command(listen_side: Side, target_side: Side, mode: int,
                  allow_uid: tuple[int, ...], allow_gid: tuple[int, ...], allow_any_user: bool,
                  cert: str | None, key: str | None, timeout: float, cafile: str | None,
                  buffer_size: int, idle_timeout: float, max_processes: int, text_dump: bool,
                  hex_dump: bool, grace: float, quiet: bool) -> None:
    """Accept clients on LISTEN and relay each to TARGET."""
    _check_sides(listen_side, target_side)
    listen_addresses = [listen_side.address] if listen_side.address is not None else []
    options = listen_options(mode, allow_uid, allow_gid, cert, key, listen_addresses,
                             allow_any_user)
    if listen_side.websocket and listen_side.text.lower().startswith("wss") and cert is None:
        raise click.UsageError("a wss:// LISTEN needs --cert (and --key if the key is in "
                               "another file)")
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    connect_options = ConnectOptions(timeout=timeout, ssl=context)
    setup_logging(quiet=quiet)
    on_data = dumper(text_dump, hex_dump, _write_stderr) if text_dump or hex_dump else None
    if target_side.command is not None:
        target_side = Side(target_side.text, command=ExecTarget(
            target_side.command.argv, target_side.command.shell, max_processes))
    if listen_side.stdio or target_side.stdio:
        from .relay_stdio import run_stdio_relay

        raise SystemExit(run_stdio_relay(listen_side, target_side, options, connect_options,
                                         on_data))
    try:
        code = _loop.run(_relay(listen_side, target_side, options, connect_options,
                                buffer_size, idle_timeout, on_data, grace))
    except KeyboardInterrupt:
        code = Exit.OK
    raise SystemExit(code)


def _write_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def _check_sides(listen: Side, target: Side) -> None:
    if listen.stdio and target.stdio:
        raise click.UsageError("both sides are stdin/stdout: nothing to relay")
    if listen.command is not None:
        raise click.UsageError(f"{listen.text}: a command is a TARGET (run per client); to "
                               "run one against an address: trunkline relay ADDRESS exec:... "
                               "and connect to it, or pipe it into trunkline connect")
    if (listen.stdio or target.stdio) and (listen.websocket or target.websocket
                                           or target.command is not None):
        raise click.UsageError("- (stdin/stdout) relays with an address; for a WebSocket "
                               "at the terminal use trunkline ws URL; run a command directly")
    if listen.websocket and target.websocket:
        raise click.UsageError("WebSocket on both sides: relay the stream under them instead "
                               "(trunkline relay tcp://... tcp://...)")
    if (listen.websocket or target.websocket) and target.command is not None:
        raise click.UsageError("a WebSocket relay bridges to an address, not a command")
    for side in (listen, target):
        if isinstance(side.address, ServiceAddress):
            raise BadAddress(f"{side.text}: relay needs socket addresses, not a service name; "
                             f"`trunkline resolve {side.address.name}` shows the addresses",
                             param_hint="LISTEN/TARGET")
    kinds = {is_datagram(side.address) for side in (listen, target)
             if side.address is not None}
    if len(kinds) > 1 or (True in kinds and (listen.websocket or target.websocket
                                              or target.command is not None)):
        datagram = next(s for s in (listen, target)
                        if s.address is not None and is_datagram(s.address))
        assert datagram.address is not None
        raise BadAddress(f"{format_address(datagram.address)} is a datagram address and the "
                         "other side is a stream: relay udp/unixgram to udp/unixgram, or "
                         "streams to streams", param_hint="LISTEN/TARGET")


async def _relay(listen: Side, target: Side, options: ListenOptions,
                 connect_options: ConnectOptions, buffer_size: int, idle_timeout: float,
                 on_data: OnData | None, grace: float) -> int:
    relay: Any
    try:
        if listen.websocket or target.websocket:
            relay = await start_websocket_relay(
                listen.text if listen.websocket else format_address(_address(listen)),
                target.text if target.websocket else format_address(_address(target)),
                listen_options=options, connect_options=connect_options, on_data=on_data,
                shutdown_timeout=grace)
        elif listen.address is not None and is_datagram(listen.address):
            relay = await start_datagram_relay(listen.address, _address(target),
                                               listen_options=options,
                                               idle_timeout=idle_timeout, on_data=on_data,
                                               shutdown_timeout=grace)
        else:
            relay = await start_relay(_address(listen),
                                      target.command or _address(target),
                                      listen_options=options, connect_options=connect_options,
                                      buffer_size=buffer_size, on_data=on_data,
                                      shutdown_timeout=grace)
    except (TrunklineError, OSError) as exc:
        report("relay", exc, listening=True)
    remove = relay.install_signal_handlers()  # a second signal aborts what is left
    try:
        listener = relay.listeners[0]
        local = getattr(listener, "local", None)  # an inherited socket's real address
        shown = relay.urls[0]
        if listen.websocket:  # say it as a ws:// URL, with the real port
            shown = _websocket_url(listen.text, shown)
        ready(shown, (f" ({local})" if local is not None else "")
              + f" (relaying to {target.text})")
        await relay.serve_forever(grace)
    finally:
        remove()
        await relay.aclose(grace)  # at once when serve_forever has stopped it
    return Exit.OK


def _websocket_url(written: str, bound: str) -> str:
    if not bound.startswith(("tcp://", "tls://")):
        return written  # ws+unix://... as given
    scheme = "wss" if written.lower().startswith("wss") else "ws"
    return f"{scheme}://{bound.split('://', 1)[1]}{parse_http_url(written).target}"


def _address(side: Side) -> Address:
    assert side.address is not None, side
    return side.address
