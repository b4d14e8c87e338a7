"""``trunkline serve APP --on URL ...``: one service on any set of addresses.

Apps are looked up by name in ``APPS``; specs that are not names (``module:app``) go through
``SPEC_LOADERS``. Both are open for other modules to extend (``register_app``), so the HTTP
apps (``hello``, ``static DIR``, ASGI ``module:app``) plug in without touching this command.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import click

from .. import _loop
from ..address import Address
from ..apps.cli_apps import register_http_apps
from ..apps.echo_service import EchoServer
from ..errors import TrunklineError
from ..server.run import DEFAULT_CONFIG
from ..trace.events import Tracer
from ..transport import ListenOptions
from ._support import (
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    AddressParam,
    describe_error,
    exit_code_for,
    fail,
    listen_flags,
    listen_options,
    ready,
    setup_logging,
)
from .main import cli
from .serve_trace import TRACE_EXAMPLES, open_tracer, trace_options


class Serving(Protocol):
    """What a started app gives back (``trunkline.Server`` fits)."""

    @property
    def urls(self) -> list[str]: ...

    def close(self) -> None: ...

    async def wait_closed(self, grace: float | None = 5.0) -> None: ...


class StartApp(Protocol):
    """``start(app_args, addresses, options, tracer=None)``: bind and return the server;
    ``tracer`` is passed only when ``--trace``/``--trace-file`` asked for one."""

    def __call__(self, args: tuple[str, ...], addresses: Sequence[Address],
                 options: ListenOptions, *, tracer: Tracer | None = None
                 ) -> Awaitable[Serving]: ...


@dataclass(frozen=True)
class ServeApp:
    """A servable app: ``start(app_args, addresses, options)`` binds every address and
    returns the running server."""

    name: str
    usage: str  # how it is written on the command line, e.g. "static DIR"
    summary: str
    start: StartApp


APPS: dict[str, ServeApp] = {}
#: Resolvers for specs that are not app names (e.g. "module:app"), given the spec, --app-dir
#: and --factory; the first non-None wins.
SPEC_LOADERS: list[Callable[[str, str | None, bool], ServeApp | None]] = []


def register_app(app: ServeApp) -> None:
    APPS[app.name] = app


def find_app(spec: str, app_dir: str | None = None, factory: bool = False) -> ServeApp | None:
    if spec in APPS:
        return APPS[spec]
    for loader in SPEC_LOADERS:
        found = loader(spec, app_dir, factory)
        if found is not None:
            return found
    return None


def available_apps() -> str:
    return "; ".join(f"{a.usage} ({a.summary})" for a in APPS.values())


async def _start_echo(args: tuple[str, ...], addresses: Sequence[Address],
                      options: ListenOptions, *, tracer: Tracer | None = None) -> Serving:
    if args:
        raise click.UsageError(f"echo takes no arguments (got {' '.join(args)})")
    config = replace(DEFAULT_CONFIG, listen=options, ssl_context=options.ssl)
    return await EchoServer(*addresses, config=config, tracer=tracer).start()


register_app(ServeApp("echo", "echo", "every byte (stream kinds) or datagram (udp, unixgram) "
                      "comes back as sent; a connection that opens with an HTTP/1.x request "
                      "line gets http-echo (see below)", _start_echo))
# hello, http-echo, static DIR, demo and module:app (trunkline's HTTP server)
register_http_apps(register_app, SPEC_LOADERS, ServeApp)


EXAMPLES = """\b
Examples:
  trunkline serve echo --on tcp://127.0.0.1:7000
  trunkline serve echo --on unix:///tmp/echo.sock --on unix:@echo --on udp://127.0.0.1:7001
  trunkline serve echo --on fifo:///tmp/echo.fifo --mode 0660 --allow-gid 100
  trunkline serve echo --on tls://127.0.0.1:7443 --cert cert.pem --key key.pem
  curl --unix-socket /tmp/echo.sock http://x/path?q=1      (against the echo above)
  trunkline serve main:app --on unix:///tmp/api.sock --on fifo:///tmp/api.fifo
  trunkline serve myproject.app:create_app --factory --app-dir src --on tcp://127.0.0.1:8000

\b
echo sniffs each stream connection's first bytes: a method of A-Z, a space and
" HTTP/1." on the first line (GET / HTTP/1.1) get the HTTP echo (the request back as
JSON; WebSocket messages back as sent), so a raw client that sends such a line gets
HTTP too. Anything else is echoed byte for byte at once; a prefix that could still be
either (GET /a) waits at most 0.5 s for more. http-echo is HTTP only.

\b
Prints "listening on URL" on stderr for each bound address (port 0 becomes the real
port), then serves until SIGINT or SIGTERM, closes cleanly (socket files removed) and
exits 0. Exit 1: an address could not be bound; exit 2: bad usage or address."""


class _ServeCommand(click.Command):
    """Lists the registered apps in --help, so apps added later show up there too."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        with formatter.section("Apps"):
            formatter.write_dl([(a.usage, a.summary) for a in APPS.values()] + [
                ("module:app", "any ASGI 3 app (FastAPI, Starlette, ...) imported as uvicorn "
                 "does: the current directory (or --app-dir) on the import path; --factory "
                 "calls it to get the app")])


@cli.command("serve", cls=_ServeCommand, epilog=EXAMPLES + "\n\n" + TRACE_EXAMPLES)
@click.argument("app", metavar="APP")
@click.argument("app_args", nargs=-1, metavar="[ARGS]...")
@click.option("--on", "on", type=AddressParam(), multiple=True, required=True, metavar="URL",
              help="An address to serve on (repeatable; stream and datagram kinds mix).")
@listen_flags
@click.option("--grace", type=float, default=5.0, show_default=True,
              help="Seconds to let open connections finish after a stop signal.")
@click.option("--app-dir", metavar="DIR", default=None,
              help="Import module:app from DIR instead of the current directory.")
@click.option("--factory", is_flag=True,
              help="module:app names a function that returns the app; call it.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings only.")
@trace_options
def serve_command(app: str, app_args: tuple[str, ...], on: tuple[Address, ...], mode: int,
                  allow_uid: tuple[int, ...], allow_gid: tuple[int, ...], cert: str | None,
                  key: str | None, grace: float, app_dir: str | None, factory: bool,
                  quiet: bool, trace: str | None, trace_file: str | None) -> None:
    """Serve APP on every --on address until stopped."""
    found = find_app(app, app_dir, factory)
    if found is None:
        raise click.UsageError(f"unknown app {app!r}; available: {available_apps()}")
    addresses = list(on)
    options = listen_options(mode, allow_uid, allow_gid, cert, key, addresses)
    setup_logging(quiet=quiet)
    tracer, close_trace = open_tracer(trace, trace_file)
    try:
        code = _loop.run(_serve(found, app_args, addresses, options, grace, tracer))
    except KeyboardInterrupt:  # a second Ctrl-C while closing
        code = EXIT_OK
    finally:
        close_trace()
    raise SystemExit(code)


async def _serve(app: ServeApp, args: tuple[str, ...], addresses: list[Address],
                 options: ListenOptions, grace: float, tracer: Tracer | None = None) -> int:
    try:
        # only a traced serve passes a tracer, so app starters need not all take one
        server = await (app.start(args, addresses, options) if tracer is None else
                        app.start(args, addresses, options, tracer=tracer))
    except click.UsageError:
        raise
    except (TrunklineError, OSError) as exc:
        code = exit_code_for(exc)
        fail("serve", describe_error(exc), EXIT_USAGE if code == EXIT_USAGE else EXIT_UNREACHABLE)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        listeners = getattr(server, "listeners", None)
        if listeners is not None and len(listeners) == len(server.urls):
            for url, listener in zip(server.urls, listeners, strict=True):
                local = getattr(listener, "local", None)  # an inherited socket's real address
                ready(url, f" ({local})" if local is not None else "")
        else:
            for url in server.urls:
                ready(url)
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed(grace)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return EXIT_OK

