"""``trunkline map``: every socket and FIFO on this machine and who talks to whom
(``trunkline.sockmap``), as tables, JSON, Mermaid or an HTML page."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from ..errors import RegistryError, TransportError, TrunklineError, UnsupportedError
from ..registry.url import RegistryURL
from ._support import fail
from .exits import Exit, exit_help
from .main import cli
from .registry import registry_option
from .registry import where as registry_where

if TYPE_CHECKING:
    from ..sockmap import SocketMap

KIND_NAMES = ("tcp", "udp", "unix", "unixgram", "unixseq", "fifo")

EXAMPLES = """\b
Examples:
  trunkline map                              every socket, FIFO and connection, as tables
  trunkline map --kind unix --kind fifo      only Unix sockets and FIFOs
  trunkline map --pid 1234                   what process 1234 holds, and who it talks to
  trunkline map --listening                  who waits for peers, on which address
  trunkline map --service users               the sockets of registered service users
  trunkline map --registry etcd://10.0.0.5:2379 --service users
  trunkline map --mermaid > map.mmd          a flowchart: processes as boxes, one edge per
                                             connection (kind and address)
  trunkline map --html map.html              a page that draws it offline
  trunkline map --json | jq '.connections[] | {kind, address}'
  sudo trunkline map                         other users' processes too

\b
Pairs: TCP by matching the two endpoints; Unix sockets by the peer inode the kernel reports
(sock_diag); FIFOs by the processes holding each end (writer to reader). Without root only
your own processes' sockets are named; the output says how many were hidden. Processes in
another network namespace are listed, their sockets are not (run the map there, e.g.
`ip netns exec NAME trunkline map`). Needs the map extra: pip install 'trunkline[map]'.
Exit 0; 1 when the map cannot be made (the map extra missing, the kernel's tables not
readable); 2 on bad usage (bad --services-file, unknown --service); 23 when --html cannot
be written. Sockets of services registered from this host (`trunkline serve --name`,
trunkline.register) carry their service name; a registry that cannot be read is said on
stderr and the map is drawn without names.

""" + exit_help(Exit.OK, Exit.CANNOT_LISTEN, Exit.USAGE, Exit.WRITE)


@cli.command("map", epilog=EXAMPLES)
@click.option("--json", "as_json", is_flag=True, help="Print the map as JSON.")
@click.option("--mermaid", "as_mermaid", is_flag=True, help="Print a Mermaid flowchart.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE", help="Write a self-contained HTML page (diagram and tables).")
@click.option("--pid", "pids", type=click.IntRange(min=1), multiple=True, metavar="PID",
              help="Only what this process holds and its connections (repeatable).")
@click.option("--service", "services", multiple=True, metavar="NAME",
              help="Only this registered service's sockets and connections (repeatable).")
@click.option("--kind", "kinds", type=click.Choice(KIND_NAMES), multiple=True,
              help="Only this kind (repeatable).")
@click.option("--listening", is_flag=True,
              help="Only sockets waiting for peers (listening, or bound datagram sockets).")
@click.option("--services-file", type=click.File("r"), metavar="FILE",
              help='Service records to label sockets with instead of the registry\'s, as '
                   'JSON: [{"name": "echo", "urls": ["tcp://127.0.0.1:7000"], "pids": [1234]}].')
@registry_option
def map_command(as_json: bool, as_mermaid: bool, html_file: Path | None, pids: tuple[int, ...],
                services: tuple[str, ...], kinds: tuple[str, ...], listening: bool,
                services_file: TextIO | None, registry: RegistryURL | None) -> None:
    """Show every socket and FIFO on this machine, and which process talks to which."""
    if as_json and as_mermaid:
        raise click.UsageError("--json and --mermaid each print the whole map: pick one")
    try:
        from ..sockmap import MapFilter, build_map, load_records, registered_services

        if services_file is not None:
            records = load_records(services_file.read(), services_file.name)
            source = services_file.name
        else:
            source = str(registry_where(registry, "map")[0])
            try:
                records = registered_services(source)
            except RegistryError as exc:
                click.echo(f"trunkline map: the registry cannot be read ({exc}); sockets are "
                           "not labelled with service names", err=True)
                records = []
        unknown = sorted(set(services) - {r.name for r in records})
        if unknown:
            known = ", ".join(sorted({r.name for r in records})) or "none"
            raise click.BadParameter(
                f"no service named {', '.join(unknown)} registered from this host in "
                f"{source} (known: {known}); `trunkline services` lists them",
                param_hint="--service")
        where = MapFilter(pids=frozenset(pids), services=frozenset(services),
                          kinds=frozenset(kinds), listening=listening)
        the_map = build_map(where, records)
    except (UnsupportedError, TransportError) as exc:
        fail("map", str(exc), Exit.CANNOT_LISTEN)
    except TrunklineError as exc:
        fail("map", str(exc), Exit.USAGE)

    from ..sockmap.render import render_html, render_mermaid

    if html_file is not None:
        try:
            html_file.write_text(render_html(the_map), encoding="utf-8")
        except OSError as exc:
            fail("map", f"cannot write {html_file}: {exc.strerror or exc}", Exit.WRITE)
        click.echo(f"wrote {html_file}", err=True)
    if as_json:
        click.echo(json.dumps(the_map.to_dict(), indent=2))
    elif as_mermaid:
        click.echo(render_mermaid(the_map), nl=False)
    elif html_file is None:
        _print_tables(the_map)


def _print_tables(the_map: SocketMap) -> None:
    from rich.console import Console

    from ..sockmap.table import render_tables

    # a pipe or file gets 100 columns, whatever COLUMNS says
    console = Console(highlight=False) if sys.stdout.isatty() else Console(
        highlight=False, width=100)
    console.print(render_tables(the_map))
