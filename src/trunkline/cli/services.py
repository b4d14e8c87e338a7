"""``trunkline services [--watch] [--json]``: every registered instance, and whether its
addresses take a connection now."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..aio.servers import connect
from ..registry import HostIdentity, Instance, Resolver, open_registry
from ..registry.ranking import rank_instance
from ..registry.url import RegistryURL
from .exits import Exit
from .main import cli
from .registry import EXIT_HELP, age, registry_option, run_registry, where

EPILOG = f"""\b
Examples:
  trunkline services
  trunkline services --watch                      redraw on every change (Ctrl-C ends, exit 0)
  trunkline services --json | jq '.instances[] | select(.health == "down")'
  trunkline services --registry etcd://10.0.0.5:2379 --service users

\b
Health is checked from here: each address this caller can reach (see `trunkline resolve`)
is connected to and closed at once (--health-timeout). up = one took a connection, down =
none did, - = none is reachable from here (another host's loopback or paths; datagrams).
With --watch the table is redrawn when the registry changes, and every few seconds for the
ages and health; with --json each view is one JSON line.

{EXIT_HELP}"""


@dataclass
class Health:
    status: str  # "up", "down" or "-"
    urls: dict[str, str]  # url -> "ok", an error, or why it was not tried


@cli.command("services", epilog=EPILOG)
@click.option("--watch", is_flag=True, help="Keep showing the instances as they change.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable output.")
@click.option("--service", "service", metavar="NAME", default=None,
              help="Only the instances of this service.")
@click.option("--health-timeout", type=float, default=0.5, show_default=True,
              metavar="SECONDS", help="How long a health check connect may take.")
@click.option("--no-health", is_flag=True, help="Do not connect to check health.")
@registry_option
def services_command(watch: bool, as_json: bool, service: str | None, health_timeout: float,
                     no_health: bool, registry: RegistryURL | None) -> None:
    """List every registered service instance: name, addresses, host, pid, age, protocol
    and health (does it take a connection now?)."""
    chosen, _ = where(registry, "services")
    timeout = None if no_health else health_timeout
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)  # URLs are long: never cut them
    if watch:
        # Ctrl-C is how a watch ends: like serve, that is a clean exit
        run_registry("services", _watch(chosen, service, timeout, as_json, console),
                     interrupt_code=Exit.OK)
    else:
        run_registry("services", _once(chosen, service, timeout, as_json, console))
    raise SystemExit(Exit.OK)


async def _once(url: RegistryURL, service: str | None, timeout: float | None, as_json: bool,
                console: Console) -> None:
    store = open_registry(url)
    try:
        instances = await store.list(service)
    finally:
        await store.close()
    health = await check_all(instances, timeout)
    if as_json:
        click.echo(json.dumps(view_json(str(url), instances, health, False), indent=2))
    else:
        console.print(render(str(url), instances, health, stale=False))


async def _watch(url: RegistryURL, service: str | None, timeout: float | None, as_json: bool,
                 console: Console) -> None:
    async with Resolver(open_registry(url), owns_store=True) as resolver:
        await resolver.start()
        with _live(console, as_json) as show:
            while True:
                seen = resolver.version
                instances = [i for i in resolver.instances()
                             if service is None or i.service == service]
                health = await check_all(instances, timeout)
                if as_json:
                    click.echo(json.dumps(view_json(str(url), instances, health,
                                                    resolver.stale)))
                else:
                    show(render(str(url), instances, health, resolver.stale))
                with contextlib.suppress(TimeoutError):  # redraw for ages and health
                    await resolver.wait_for(functools.partial(_moved, resolver, seen), 2.0)


def _moved(resolver: Resolver, seen: int) -> bool:
    return resolver.version != seen


@contextlib.contextmanager
def _live(console: Console, as_json: bool) -> Iterator[Any]:
    """A redraw-in-place display on a terminal; one table after another elsewhere."""
    if as_json or not console.is_terminal:
        yield console.print
        return
    with Live(console=console, auto_refresh=False, transient=False) as live:
        def show(table: Group) -> None:
            live.update(table, refresh=True)
        yield show


# ---------------------------------------------------------------------------- health


async def check_all(instances: list[Instance], timeout: float | None) -> dict[str, Health]:
    if timeout is None:
        return {}
    here = HostIdentity.current()
    checks = await asyncio.gather(*(check(i, here, timeout) for i in instances))
    return {i.id + "@" + i.service: h for i, h in zip(instances, checks, strict=True)}


async def check(instance: Instance, here: HostIdentity, timeout: float) -> Health:
    candidates, skipped = rank_instance(instance, here)
    urls = {s.url: f"not tried: {s.reason}" for s in skipped}
    results = await asyncio.gather(*(_connects(c.url, timeout) for c in candidates))
    for candidate, result in zip(candidates, results, strict=True):
        urls[candidate.url] = result
    status = "-" if not candidates else ("up" if "ok" in results else "down")
    return Health(status, {url: urls[url] for url in instance.urls})


async def _connects(url: str, timeout: float) -> str:
    try:
        stream = await connect(url, timeout=timeout)
    except Exception as exc:  # any failure is the answer
        return str(exc) or type(exc).__name__
    stream.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(stream.wait_closed(), timeout)
    return "ok"


# ---------------------------------------------------------------------------- output


def view_json(url: str, instances: list[Instance], health: dict[str, Health], stale: bool
              ) -> dict[str, Any]:
    now = time.time()
    out = []
    for instance in instances:
        record = instance.to_dict()
        record.pop("version", None)
        record["age_s"] = round(instance.age(now), 3)
        checked = health.get(instance.id + "@" + instance.service)
        if checked is not None:
            record["health"] = checked.status
            record["url_health"] = checked.urls
        out.append(record)
    return {"registry": url, "stale": stale, "instances": out}


_MARKS = {"ok": "[green]✓[/]"}


def render(url: str, instances: list[Instance], health: dict[str, Health], stale: bool
           ) -> Group:
    here = HostIdentity.current()
    now = time.time()
    services = len({i.service for i in instances})
    title = f"{len(instances)} instance(s) of {services} service(s) in {url}"
    if stale:
        title += " [bold red](stale: the registry is unreachable)[/]"
    table = Table(header_style="bold", box=None, pad_edge=False, show_edge=False)
    longest = max((len(u) for i in instances for u in i.urls), default=10)
    for column in ("service", "instance", "protocol", "addresses", "host", "pid", "age",
                   "health"):
        if column == "addresses":  # never cut a URL; the others give way first
            table.add_column(column, no_wrap=True, min_width=longest + 2)
        else:
            table.add_column(column, no_wrap=True)
    for instance in sorted(instances, key=lambda i: (i.service, i.started)):
        checked = health.get(instance.id + "@" + instance.service)
        lines = []
        for address in instance.urls:
            result = checked.urls.get(address, "") if checked else ""
            mark = _MARKS.get(result, "[red]✗[/]" if result and not result.startswith(
                "not tried") else "[dim]-[/]") if checked else " "
            lines.append(f"{mark} {address}")
        host = instance.host.hostname
        if here.same_network(instance.host):
            host += " (this netns)"
        elif here.same_boot(instance.host):
            host += " (other netns)"
        status = checked.status if checked else "?"
        colour = {"up": "green", "down": "red"}.get(status, "dim")
        table.add_row(instance.service, instance.id, instance.protocol, "\n".join(lines), host,
                      str(instance.pid), age(instance.age(now)), f"[{colour}]{status}[/]")
    if not instances:
        table.add_row("[dim](none)[/]", "", "", "", "", "", "", "")
    return Group(Text.from_markup(title), table)
