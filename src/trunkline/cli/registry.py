"""``trunkline resolve NAME`` and ``trunkline registry info|prune``, plus what every registry
command shares: the ``--registry URL`` option and one-line errors with the usual exit codes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from .. import _loop
from ..errors import AddressError
from ..registry import Instance, Resolution, Resolver, open_registry
from ..registry.ranking import KINDS
from ..registry.url import ENV_VAR, RegistryURL, parse_registry_url, registry_url
from ._support import BadAddress, fail, report
from .exits import Exit, exit_help
from .main import cli

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

REGISTRY_HELP = (f"Registry: sqlite:///path or etcd://host:2379[,host:2379...] (default: "
                 f"${ENV_VAR}, else the user's SQLite file in $XDG_RUNTIME_DIR/trunkline).")
EXIT_HELP = exit_help(Exit.OK, Exit.CANNOT_LISTEN, Exit.USAGE, Exit.BAD_ADDRESS, Exit.RESOLVE,
                      Exit.CONNECT, Exit.INTERRUPTED)


class RegistryParam(click.ParamType):  # type: ignore[type-arg]
    """A registry URL, parsed at the command line; a bad one exits 3 (a malformed URL)."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> RegistryURL:
        if isinstance(value, RegistryURL):
            return value
        try:
            return parse_registry_url(str(value))
        except AddressError as exc:
            raise BadAddress(str(exc), ctx, param) from None


def registry_option(func: F) -> F:
    return click.option("--registry", "registry", type=RegistryParam(), default=None,
                        metavar="URL", help=REGISTRY_HELP)(func)


def run_registry(command: str, main: Coroutine[Any, Any, T], *,
                 interrupt_code: int = Exit.INTERRUPTED) -> T:
    """Run ``main``; errors become one line on stderr and a status from the one table.
    The registry's warnings (e.g. "unreachable, serving the last view") are left out: the
    error line, or the stale mark of --watch, says it once."""
    logging.getLogger("trunkline.registry").setLevel(logging.ERROR)
    try:
        return _loop.run(main)
    except KeyboardInterrupt:
        raise SystemExit(interrupt_code) from None
    except Exception as exc:  # registry, name and transport errors alike: one line
        report(command, exc)


def where(url: RegistryURL | None, command: str) -> tuple[RegistryURL, str]:
    """The registry a command uses, and where that choice came from."""
    if url is not None:
        return url, "--registry"
    try:
        chosen = registry_url()
    except AddressError as exc:
        fail(command, f"${ENV_VAR}: {exc}", Exit.BAD_ADDRESS)
    return chosen, (f"${ENV_VAR}" if os.environ.get(ENV_VAR, "").strip() else "default")


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


# ---------------------------------------------------------------------------- resolve

RESOLVE_EPILOG = f"""\b
Examples:
  trunkline resolve users
  trunkline resolve users --prefer tcp
  trunkline resolve metrics --datagram --json | jq -r '.candidates[0].url'

\b
Lists the live instances' addresses this caller can use, best first, with the reason for
each place (same network namespace: abstract name; same mount namespace: Unix path, FIFO;
then loopback TCP; from another host TCP or TLS on a non-loopback address), and those
skipped with why. Instances whose best address ranks the same take turns at the front.
--prefer KIND ({", ".join(KINDS)}) moves that kind first where it is reachable.

{EXIT_HELP}"""


@cli.command("resolve", epilog=RESOLVE_EPILOG)
@click.argument("name")
@click.option("--prefer", type=click.Choice(KINDS), default=None,
              help="Put this socket kind first where reachable.")
@click.option("--datagram", is_flag=True, help="Rank datagram addresses (udp, unixgram).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable output.")
@registry_option
def resolve_command(name: str, prefer: str | None, datagram: bool, as_json: bool,
                    registry: RegistryURL | None) -> None:
    """Show how service NAME resolves for this caller: candidates, ranking and reasons."""
    answer = run_registry("resolve", _resolve(name, prefer, datagram, registry))
    if as_json:
        click.echo(json.dumps(resolution_json(answer), indent=2))
    else:
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=160)  # URLs and reasons: never cut them
        show_resolution(answer, console)
    raise SystemExit(Exit.OK)


async def _resolve(name: str, prefer: str | None, datagram: bool,
                   registry: RegistryURL | None) -> Resolution:
    async with Resolver(open_registry(where(registry, "resolve")[0]), owns_store=True) as resolver:
        return await resolver.resolve(name, prefer=prefer, datagram=datagram)


def resolution_json(answer: Resolution) -> dict[str, Any]:
    return {
        "service": answer.service, "registry": answer.backend, "stale": answer.stale,
        "instances": answer.instances, "prefer": answer.prefer,
        "candidates": [{"url": c.url, "kind": c.kind, "instance": c.instance.id,
                        "pid": c.instance.pid, "host": c.instance.host.hostname,
                        "reason": c.reason} for c in answer.candidates],
        "skipped": [{"url": s.url, "instance": s.instance.id, "reason": s.reason}
                    for s in answer.skipped],
    }


def show_resolution(answer: Resolution, console: Console) -> None:
    stale = " [bold red](stale: the registry is unreachable)[/]" if answer.stale else ""
    console.print(f"[bold]{answer.service}[/] in {answer.backend}: {answer.instances} live "
                  f"instance(s){stale}")
    table = Table(box=None, header_style="bold", pad_edge=False, show_edge=False)
    for column in ("#", "address", "instance", "why"):
        table.add_column(column)
    for number, candidate in enumerate(answer.candidates, 1):
        table.add_row(str(number), candidate.url, candidate.instance.id, candidate.reason)
    console.print(table)
    if answer.skipped:
        console.print("skipped:")
        skipped = Table(box=None, pad_edge=False, show_edge=False, show_header=False)
        for _ in range(3):
            skipped.add_column()
        for item in answer.skipped:
            skipped.add_row(f"  {item.url}", item.instance.id, item.reason)
        console.print(skipped)


# ---------------------------------------------------------------------------- registry

GROUP_EPILOG = f"""\b
Examples:
  trunkline registry info
  trunkline registry prune --registry etcd://10.0.0.5:2379

{EXIT_HELP}"""


@cli.group("registry", epilog=GROUP_EPILOG)
def registry_group() -> None:
    """Look after the service registry (which one is used, dead records)."""


@registry_group.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable output.")
@registry_option
def info_command(as_json: bool, registry: RegistryURL | None) -> None:
    """Which registry this user's commands use, whether it answers, and what it holds."""
    chosen, source = where(registry, "registry info")
    instances = run_registry("registry info", _list(chosen))
    services = sorted({i.service for i in instances})
    if as_json:
        click.echo(json.dumps({"registry": str(chosen), "source": source,
                               "instances": len(instances), "services": services}, indent=2))
    else:
        click.echo(f"registry  {chosen}  (from {source})")
        click.echo(f"holds     {len(instances)} live instance(s) of {len(services)} "
                   f"service(s){': ' + ', '.join(services) if services else ''}")
    raise SystemExit(Exit.OK)


async def _list(url: RegistryURL) -> list[Instance]:
    store = open_registry(url)
    try:
        return await store.list()
    finally:
        await store.close()


@registry_group.command("prune")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable output.")
@registry_option
def prune_command(as_json: bool, registry: RegistryURL | None) -> None:
    """Remove the records of dead instances: expired ones, and those whose process is gone
    (checked for records made in this pid namespace)."""
    chosen, _ = where(registry, "registry prune")
    removed = run_registry("registry prune", _prune(chosen))
    if as_json:
        click.echo(json.dumps({"registry": str(chosen), "removed": [
            {"service": i.service, "instance": i.id, "pid": i.pid} for i in removed]},
            indent=2))
    else:
        click.echo(f"removed {len(removed)} record(s) of dead instances from {chosen}")
        for instance in removed:
            click.echo(f"  {instance.service}/{instance.id} (pid {instance.pid} on "
                       f"{instance.host.hostname})")
    raise SystemExit(Exit.OK)


async def _prune(url: RegistryURL) -> list[Instance]:
    store = open_registry(url)
    try:
        return await store.prune()
    finally:
        await store.close()
