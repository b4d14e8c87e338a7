"""``trunkline relay LISTEN_URL TARGET_URL``: a socat-like bridge between two stream addresses."""

from __future__ import annotations

import click

from .. import _loop
from ..address import Address, format_address
from ..errors import TrunklineError
from ..host import DEFAULT_SHUTDOWN_TIMEOUT
from ..relay import DEFAULT_BUFFER, start_relay
from ..transport import ConnectOptions, ListenOptions
from ._support import (
    AddressParam,
    listen_flags,
    listen_options,
    ready,
    report,
    setup_logging,
)
from .exits import Exit, exit_help
from .main import cli

EXAMPLES = f"""\b
Examples:
  trunkline relay tcp://127.0.0.1:8000 unix:///run/app.sock     (TCP clients reach a UDS app)
  trunkline relay unix:///tmp/db.sock tcp://10.0.0.5:5432
  trunkline relay fifo:///tmp/app.fifo tcp://127.0.0.1:8000
  trunkline relay tcp://127.0.0.1:0 unix:@app --quiet
  trunkline relay unix:@front tcp://127.0.0.1:8000 --allow-uid 1000

\b
Each client accepted on LISTEN_URL gets its own connection to TARGET_URL; bytes flow both
ways. EOF on one side half-closes the other; a pair closes when both directions have
ended. An abstract LISTEN_URL admits only this user's uid unless --allow-uid/--allow-gid
or --allow-any-user say otherwise. Prints "listening on URL" on stderr once bound, and
one log line per connection at close (bytes up = client to target, bytes down = target
to client, duration). A target that cannot be reached fails that client's connection
(logged), not the relay.
Runs until SIGINT/SIGTERM, then lets relayed connections finish for up to --grace
seconds, aborts the rest (a second signal aborts at once) and exits 0.

{exit_help(Exit.OK, Exit.CANNOT_LISTEN, Exit.USAGE, Exit.BAD_ADDRESS)}"""


@cli.command("relay", epilog=EXAMPLES)
@click.argument("listen_url", type=AddressParam(stream_only=True), metavar="LISTEN_URL")
@click.argument("target_url", type=AddressParam(stream_only=True), metavar="TARGET_URL")
@listen_flags
@click.option("--timeout", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="Give up connecting to the target after this long.")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False),
              help="Trust this CA bundle (PEM) when the target is tls://.")
@click.option("--buffer", "buffer_size", type=click.IntRange(4096), default=DEFAULT_BUFFER,
              show_default=True, help="Bytes read per system call on each side.")
@click.option("--grace", type=float, default=DEFAULT_SHUTDOWN_TIMEOUT, show_default=True,
              help="Seconds to let open connections finish after a stop signal (a second "
                   "signal aborts them at once).")
@click.option("-q", "--quiet", is_flag=True, help="No per-connection log lines.")
def relay_command(listen_url: Address, target_url: Address, mode: int,
                  allow_uid: tuple[int, ...], allow_gid: tuple[int, ...], allow_any_user: bool,
                  cert: str | None, key: str | None, timeout: float, cafile: str | None,
                  buffer_size: int, grace: float, quiet: bool) -> None:
    """Accept clients on LISTEN_URL and relay each to TARGET_URL."""
    import ssl

    options = listen_options(mode, allow_uid, allow_gid, cert, key, [listen_url],
                             allow_any_user)
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    connect_options = ConnectOptions(timeout=timeout, ssl=context)
    setup_logging(quiet=quiet)
    try:
        code = _loop.run(_relay(listen_url, target_url, options, connect_options,
                                buffer_size, grace))
    except KeyboardInterrupt:
        code = Exit.OK
    raise SystemExit(code)


async def _relay(listen_url: Address, target_url: Address, options: ListenOptions,
                 connect_options: ConnectOptions, buffer_size: int, grace: float) -> int:
    try:
        relay = await start_relay(listen_url, target_url, listen_options=options,
                                  connect_options=connect_options, buffer_size=buffer_size)
    except (TrunklineError, OSError) as exc:
        report("relay", exc, listening=True)
    remove = relay.install_signal_handlers()  # a second signal aborts what is left
    try:
        local = getattr(relay.listener, "local", None)  # an inherited socket's real address
        ready(relay.url, (f" ({local})" if local is not None else "")
              + f" (relaying to {format_address(target_url)})")
        await relay.serve_forever(grace)
    finally:
        remove()
        await relay.aclose(grace)  # at once when serve_forever has stopped it
    return Exit.OK
