"""``trunkline dashboard --on URL``: the live page of this machine (``trunkline.dashboard``)
on trunkline's own HTTP server, as ``trunkline serve`` runs an app."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

from .. import _loop
from ..address import Address, FdAddress, TcpAddress, UnixAddress, format_address, parse_address
from ..errors import LifespanError, TrunklineError
from ..host import DEFAULT_SHUTDOWN_TIMEOUT
from ..registry.url import RegistryURL
from ..server.config import ServerConfig
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
from .registry import registry_option

DEFAULT_ON = "tcp://127.0.0.1:0"

EPILOG = """\b
Examples:
  trunkline dashboard                                  a free loopback port; open the URL printed
  trunkline dashboard --on tcp://127.0.0.1:8600 --bench benchmarks/img
  trunkline dashboard --on unix:///run/user/1000/dash.sock     behind a reverse proxy
  trunkline dashboard --traces /tmp/traces &
  trunkline serve hello --on tcp://127.0.0.1:8000 --trace-file /tmp/traces/server.jsonl &
  trunkline call http://127.0.0.1:8000/ --trace=json --trace-file /tmp/traces/call.json
  trunkline bench pingpong --json --plot results/pingpong.png > results/pingpong.json

\b
Panels: the registry's services, updated live (a WebSocket) as instances come and go; the
socket map (as trunkline map draws it: a diagram and tables), refreshed on demand; recent
traces from --traces DIR (server JSON lines, call --trace=json documents, text timelines,
Mermaid files; a call and the server side of it shown as one), as timelines and sequence
diagrams, new ones live; the benchmark results in --bench DIR (each NAME.json with the
NAME.png of --plot beside it). Every asset ships in the package: no network needed.

\b
Read-only: GET and HEAD only. It shows this machine's services, sockets, processes and
traces to whoever reaches it, so it listens on loopback (or a Unix socket, --mode 0600) by
default; a non-loopback TCP address (0.0.0.0, a LAN address, a host name) needs
--allow-remote, and then prints a warning. Prints "listening on URL" and the page's
address on stderr; stops on SIGINT or SIGTERM."""


def non_loopback(address: Address) -> bool:
    """A TCP address others than this machine may reach (a name other than localhost
    counts: it may resolve to anything)."""
    if not isinstance(address, TcpAddress):
        return False
    if address.host.lower() == "localhost":
        return False
    try:
        return not ipaddress.ip_address(address.host).is_loopback
    except ValueError:
        return True


def page_url(url: str) -> str | None:
    """The address to open in a browser, for a TCP URL."""
    address = parse_address(url)
    if isinstance(address, TcpAddress):
        host = f"[{address.host}]" if ":" in address.host else address.host
        return f"{'https' if address.tls else 'http'}://{host}:{address.port}/"
    return None


@cli.command("dashboard", epilog=EPILOG + "\n\n" + exit_help(
    Exit.OK, Exit.CANNOT_LISTEN, Exit.USAGE, Exit.BAD_ADDRESS))
@click.option("--on", "on", type=AddressParam(stream_only=True), multiple=True,
              metavar="URL", help=f"Serve the page here (repeatable; default {DEFAULT_ON}).")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback TCP address (prints a warning: the page shows this "
                   "machine's services, sockets and traces to anyone who reaches it).")
@registry_option
@click.option("--traces", "traces", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="Show the trace files in DIR, live (default: the user's trace directory, "
                   "$XDG_RUNTIME_DIR/trunkline, where call --trace=html and the tour write).")
@click.option("--bench", "bench", type=click.Path(file_okay=False, exists=True,
                                                  path_type=Path),
              default=None, metavar="DIR",
              help="Show the benchmark results in DIR (bench --json files, --plot PNGs).")
@listen_flags
@click.option("-q", "--quiet", is_flag=True, help="Log warnings only.")
def dashboard_command(on: tuple[Address, ...], allow_remote: bool,
                      registry: RegistryURL | None, traces: Path | None, bench: Path | None,
                      mode: int, allow_uid: tuple[int, ...], allow_gid: tuple[int, ...],
                      allow_any_user: bool, cert: str | None, key: str | None,
                      quiet: bool) -> None:
    """Serve a live, read-only page of this machine: services, socket map, traces, benchmarks."""
    addresses = list(on) or [parse_address(DEFAULT_ON)]
    remote = [format_address(a) for a in addresses if non_loopback(a)]
    if remote and not allow_remote:
        raise click.UsageError(
            f"{', '.join(remote)} is not a loopback address: the dashboard would show this "
            "machine's services, sockets and traces to anyone who reaches it. Serve it on "
            "tcp://127.0.0.1:PORT or a Unix socket (behind a proxy that checks who asks), or "
            "add --allow-remote to serve it there anyway")
    options = listen_options(mode, allow_uid, allow_gid, cert, key, addresses, allow_any_user)
    setup_logging(quiet=quiet)
    for url in remote:
        click.echo(f"warning: serving the dashboard on {url}, not a loopback address: anyone "
                   "who reaches it sees this machine's services, sockets and traces "
                   "(--allow-remote)", err=True)
    if traces is None:
        from ..tour.trace_leg import trace_base_dir

        traces = trace_base_dir()
    from ..dashboard import DashboardApp, DashboardConfig

    only_loopback_tcp = all(isinstance(a, TcpAddress) and not non_loopback(a)
                            for a in addresses)
    config = DashboardConfig(registry=str(registry) if registry else None, traces=traces,
                             bench=bench, check_host=only_loopback_tcp)
    try:
        app = DashboardApp(config)
    except TrunklineError as exc:
        report("dashboard", exc)
    server_config = ServerConfig(listen=options, lifespan="on", access_log=False)
    try:
        code = _loop.run(_serve(app, addresses, server_config))
    except KeyboardInterrupt:  # a second Ctrl-C while closing
        code = Exit.OK
    raise SystemExit(code)


async def _serve(app: object, addresses: list[Address], config: ServerConfig) -> int:
    from ..dashboard import DashboardApp
    from ..server import AppServer

    assert isinstance(app, DashboardApp)
    server = AppServer(app, *addresses, config=config)
    try:
        await server.start()
    except LifespanError as exc:
        fail("dashboard", f"{exc}; not serving", Exit.CANNOT_LISTEN)
    except (TrunklineError, OSError) as exc:
        report("dashboard", exc, listening=True)
    remove = server.install_signal_handlers()
    try:
        for url, listener in zip(server.urls, server.listeners, strict=True):
            local = getattr(listener, "local", None)
            ready(url, f" ({local})" if local is not None else "")
            page = page_url(url)
            if page is not None:
                click.echo(f"dashboard: {page}", err=True)
            elif isinstance(parse_address(url), UnixAddress | FdAddress):
                click.echo(f"dashboard: {url} (point a reverse proxy at it, or: curl "
                           "--unix-socket PATH http://localhost/)", err=True)
        await server.serve_forever(DEFAULT_SHUTDOWN_TIMEOUT)
    finally:
        remove()
        await server.aclose(DEFAULT_SHUTDOWN_TIMEOUT)
    return Exit.OK
