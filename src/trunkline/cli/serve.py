"""``trunkline serve APP --on URL ...``: one service on any set of addresses.

Apps are looked up by name in ``APPS``; specs that are not names (``module:app``) go through
``SPEC_LOADERS``. Both are open for other modules to extend (``register_app``), so the HTTP
apps (``hello``, ``static DIR``, ASGI ``module:app``) plug in without touching this command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import click

from .. import _loop
from ..address import Address
from ..apps.cli_apps import register_http_apps
from ..apps.echo_service import EchoServer
from ..errors import AppLoadError, LifespanError, TrunklineError
from ..host import DEFAULT_SHUTDOWN_TIMEOUT, Hook
from ..registry.url import RegistryURL
from ..server.config import ServerConfig
from ..server.run import DEFAULT_CONFIG
from ..trace.events import Tracer
from ..transport import Listener, ListenOptions
from ._support import (
    AddressParam,
    fail,
    listen_flags,
    listen_options,
    ready,
    report,
    setup_logging,
)
from .exits import Exit, exit_help
from .main import cli
from .serve_name import NAME_HELP, check_name_options, name_hooks, name_options
from .serve_options import (
    ENV_HELP,
    check_forwarded,
    http_options,
    load_env_file,
    log_level,
    server_config,
)
from .serve_reload import (
    RELOAD_HELP,
    in_reload_child,
    reload_child_addresses,
    reload_options,
    run_reloader,
    stop_with_parent,
)
from .serve_trace import TRACE_EXAMPLES, open_tracer, trace_options
from .serve_workers import WORKERS_HELP, check_workers, run_workers, workers_option


class Serving(Protocol):
    """What a started app gives back: a server on a ``ServiceHost`` (``trunkline.Server``,
    ``AppServer`` and ``EchoServer`` fit)."""

    @property
    def urls(self) -> list[str]: ...

    @property
    def listeners(self) -> list[Listener]: ...

    def install_signal_handlers(self) -> Callable[[], None]: ...

    def request_shutdown(self) -> None: ...

    def abort(self) -> None: ...

    async def serve_forever(self, grace: float | None = None) -> None: ...

    async def aclose(self, grace: float | None = None) -> None: ...


class StartApp(Protocol):
    """``start(app_args, addresses, options, tracer=None, config=None)``: bind and return
    the server; ``tracer`` is passed only when ``--trace``/``--trace-file`` asked for one,
    ``config`` (the HTTP server's timeouts and limits) always, ``hooks`` (the host's: --name
    registration) only when there are some."""

    def __call__(self, args: tuple[str, ...], addresses: Sequence[Address],
                 options: ListenOptions, *, tracer: Tracer | None = None,
                 config: ServerConfig | None = None, hooks: Sequence[Hook] = ()
                 ) -> Awaitable[Serving]: ...


@dataclass(frozen=True)
class ServeApp:
    """A servable app: ``start(app_args, addresses, options)`` binds every address and
    returns the running server."""

    name: str
    usage: str  # how it is written on the command line, e.g. "static DIR"
    summary: str
    start: StartApp
    protocol: str = "http"  # what --name registers it as: raw, http or websocket


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
                      options: ListenOptions, *, tracer: Tracer | None = None,
                      config: ServerConfig | None = None, hooks: Sequence[Hook] = ()
                      ) -> Serving:
    if args:
        raise click.UsageError(f"echo takes no arguments (got {' '.join(args)})")
    config = replace(config or DEFAULT_CONFIG, listen=options)
    return await EchoServer(*addresses, config=config, tracer=tracer, hooks=hooks).start()


register_app(ServeApp("echo", "echo", "every byte (stream kinds) or datagram (udp, unixgram) "
                      "comes back as sent; a connection that opens with an HTTP/1.x request "
                      "line gets http-echo (see below)", _start_echo, protocol="raw"))
# hello, http-echo, static DIR, demo and module:app (trunkline's HTTP server)
register_http_apps(register_app, SPEC_LOADERS, ServeApp)


EXAMPLES = """\b
Examples:
  trunkline serve echo --on tcp://127.0.0.1:7000
  trunkline serve echo --on unix:///tmp/echo.sock --on unix:@echo --on udp://127.0.0.1:7001
  trunkline serve echo --on fifo:///tmp/echo.fifo --mode 0660 --allow-gid 100
  trunkline serve echo --on unix:@echo --allow-any-user   (abstract: own uid by default)
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
Who may connect: a socket path or FIFO admits whoever its --mode lets in; an abstract
name (unix:@name) only this server's uid, unless --allow-uid/--allow-gid widen it or
--allow-any-user opens it. Refused peers are closed at once and logged. The admit flags
apply to Unix stream sockets, FIFOs and inherited Unix sockets (a usage error where no
address can take them). Datagram replies a peer does not read are dropped and counted.

\b
Prints "listening on URL" on stderr for each bound address (port 0 becomes the real
port), then serves until SIGINT or SIGTERM: stops accepting (socket files removed), lets
requests and connections in flight finish for up to --grace seconds, aborts the rest and
exits 0. A second signal aborts at once. The log says what the stop waits for:
"waiting for 2 connections (up to 10 s), Ctrl-C again to force"."""


class _ServeCommand(click.Command):
    """Lists the registered apps in --help, so apps added later show up there too."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        with formatter.section("Apps"):
            formatter.write_dl([(a.usage, a.summary) for a in APPS.values()] + [
                ("module:app", "any ASGI 3 app (FastAPI, Starlette, ...) imported as uvicorn "
                 "does: the current directory (or --app-dir) on the import path; --factory "
                 "calls it to get the app")])


EXITS = exit_help(Exit.OK, Exit.CANNOT_LISTEN, Exit.USAGE, Exit.BAD_ADDRESS)

PROXY_HELP = """\b
Behind a reverse proxy: --proxy-headers takes the client's address and the scheme
from X-Forwarded-For / X-Forwarded-Proto, only when the peer is in
--forwarded-allow-ips (uvicorn's rules). Unlike uvicorn it is off by default: any
local user can reach 127.0.0.1 and would be trusted to claim any client address. A
Unix socket or FIFO peer is trusted with * or when the socket's own path (or @name)
is listed: --proxy-headers --forwarded-allow-ips /run/app.sock"""


@cli.command("serve", cls=_ServeCommand,
             epilog="\n\n".join([EXAMPLES, NAME_HELP, TRACE_EXAMPLES, PROXY_HELP, WORKERS_HELP,
                                 RELOAD_HELP, ENV_HELP, EXITS]),
             context_settings={"auto_envvar_prefix": "TRUNKLINE_SERVE"})
@click.argument("app", metavar="APP")
@click.argument("app_args", nargs=-1, metavar="[ARGS]...")
@click.option("--on", "on", type=AddressParam(), multiple=True, required=True, metavar="URL",
              help="An address to serve on (repeatable; stream and datagram kinds mix).")
@listen_flags
@click.option("--grace", "--timeout-graceful-shutdown", "grace", type=float,
              default=DEFAULT_SHUTDOWN_TIMEOUT, show_default=True, metavar="SECONDS",
              help="Seconds to let open connections finish after a stop signal (a second "
                   "signal aborts them at once).")
@http_options
@click.option("--app-dir", metavar="DIR", default=None,
              help="Import module:app from DIR instead of the current directory.")
@click.option("--factory", is_flag=True,
              help="module:app names a function that returns the app; call it.")
@workers_option
@reload_options
@name_options
@click.option("-q", "--quiet", is_flag=True, help="Log warnings only.")
@trace_options
@click.pass_context
def serve_command(ctx: click.Context, /, app: str, app_args: tuple[str, ...],
                  on: tuple[Address, ...], mode: int, allow_uid: tuple[int, ...],
                  allow_gid: tuple[int, ...], allow_any_user: bool, cert: str | None,
                  key: str | None, grace: float, app_dir: str | None, factory: bool,
                  workers: int, quiet: bool, trace: str | None, trace_file: str | None,
                  name: str | None, meta: dict[str, str], ttl: float,
                  registry: RegistryURL | None, **http: Any) -> None:
    """Serve APP on every --on address until stopped."""
    check_forwarded(ctx, http)
    check_name_options(ctx, name, meta, ttl, registry)
    reload = http.pop("reload")
    reload_dirs, reload_include, reload_exclude = (
        http.pop("reload_dir"), http.pop("reload_include"), http.pop("reload_exclude"))
    check_workers(workers, reload, trace is not None or trace_file is not None)
    addresses = list(on)
    options = listen_options(mode, allow_uid, allow_gid, cert, key, addresses, allow_any_user)
    setup_logging(level=log_level(http["log_level"], quiet))
    if reload and not in_reload_child():  # only watch here; each child imports the app
        raise SystemExit(run_reloader(addresses, reload_dirs or (app_dir or ".",),
                                      reload_include, reload_exclude, grace))
    addresses = reload_child_addresses(addresses)
    load_env_file(http["env_file"])  # before the app module is imported
    found = find_app(app, app_dir, factory)
    if found is None:
        raise click.UsageError(f"unknown app {app!r}; available: {available_apps()}")
    config = server_config(http)
    hooks = name_hooks(name, found.protocol, meta, ttl, registry)
    if workers != 1:  # with --name, each worker is an instance (its own pid, same sockets)
        raise SystemExit(run_workers(
            lambda worker_addresses: _start(found, app_args, worker_addresses, options, config,
                                            hooks=hooks),
            addresses, options, workers, grace))
    tracer, close_trace = open_tracer(trace, trace_file)
    try:
        code = _loop.run(_serve(found, app_args, addresses, options, grace, config, tracer,
                                hooks))
    except KeyboardInterrupt:  # a second Ctrl-C while closing
        code = Exit.OK
    finally:
        close_trace()
    raise SystemExit(code)


async def _start(app: ServeApp, args: tuple[str, ...], addresses: Sequence[Address],
                 options: ListenOptions, config: ServerConfig, tracer: Tracer | None = None,
                 hooks: Sequence[Hook] = ()) -> Serving:
    """The started server, or a clear error and the exit status (also in a worker)."""
    # only a traced serve passes a tracer (a named one hooks), so app starters need not all
    # take them
    extra: dict[str, Any] = {}
    if tracer is not None:
        extra["tracer"] = tracer
    if hooks:
        extra["hooks"] = hooks
    try:
        return await app.start(args, addresses, options, config=config, **extra)
    except click.UsageError:
        raise
    except AppLoadError as exc:  # the APP argument names nothing servable
        fail("serve", str(exc), Exit.USAGE)
    except LifespanError as exc:  # uvicorn: "Application startup failed. Exiting."
        fail("serve", f"{exc}; not serving", Exit.CANNOT_LISTEN)
    except (TrunklineError, OSError) as exc:
        report("serve", exc, listening=True)


async def _serve(app: ServeApp, args: tuple[str, ...], addresses: list[Address],
                 options: ListenOptions, grace: float, config: ServerConfig,
                 tracer: Tracer | None = None, hooks: Sequence[Hook] = ()) -> int:
    server = await _start(app, args, addresses, options, config, tracer, hooks)
    remove = server.install_signal_handlers()  # a second signal aborts what is left
    stop_with_parent(server)  # a --reload child ends with its watcher
    try:
        for url, listener in zip(server.urls, server.listeners, strict=True):
            local = getattr(listener, "local", None)  # an inherited socket's real address
            ready(url, f" ({local})" if local is not None else "")
        await server.serve_forever(grace)
    finally:
        remove()
        await server.aclose(grace)  # at once when serve_forever has stopped it
    return Exit.OK
