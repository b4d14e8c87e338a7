"""``serve --name NAME [--meta k=v ...] [--ttl S] [--registry URL]``: register what serve
bound as one instance of service NAME (a host hook: ``registry.hook.registration_hook``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..address import check_service_name
from ..errors import AddressError, InvalidRecordError
from ..host import Hook
from ..registry.hook import registration_hook
from ..registry.model import DEFAULT_TTL, check_meta, check_ttl
from ..registry.registration import Registration
from ..registry.url import RegistryURL
from .registry import REGISTRY_HELP, RegistryParam

F = TypeVar("F", bound=Callable[..., Any])

NAME_HELP = """\b
By name: --name users registers this server as one instance of service users, with
every address it bound (port 0 as the real port, 0.0.0.0 as each interface address),
the protocol, pid and host identity; callers then reach it as svc://users,
http+svc://users/path or ws+svc://users/path and are given the fastest socket for where
they stand. A clean stop deregisters; a killed server's record expires within --ttl.
A service meant for other hosts must bind a non-loopback address (--on tcp://0.0.0.0:0)
and use a registry they share (--registry etcd://10.0.0.5:2379).
  trunkline serve hello --on unix:@users --on tcp://127.0.0.1:0 --name users --meta version=1.2"""


def _name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_service_name(value)
    except AddressError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _meta(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
          ) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in value:
        key, sep, text = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (example: --meta version=1.2)",
                                     ctx, param)
        pairs[key] = text
    try:
        return check_meta(pairs)
    except InvalidRecordError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _ttl(ctx: click.Context, param: click.Parameter, value: float) -> float:
    try:
        return check_ttl(value)
    except InvalidRecordError as exc:
        raise click.BadParameter(str(exc).replace("ttl=10", "--ttl 10"), ctx, param) from None


def name_options(func: F) -> F:
    func = click.option("--registry", "registry", type=RegistryParam(), default=None,
                        metavar="URL", help=REGISTRY_HELP + " Used with --name.")(func)
    func = click.option("--ttl", "ttl", type=float, default=DEFAULT_TTL, show_default=True,
                        metavar="SECONDS", callback=_ttl,
                        help="With --name: a killed server's record expires after this long "
                             "without a heartbeat.")(func)
    func = click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", callback=_meta,
                        help="With --name: free-form metadata for the record (repeatable).")(
        func)
    return click.option("--name", "name", metavar="NAME", default=None, callback=_name,
                        help="Register as an instance of service NAME (a DNS label: 1-63 "
                             "of a-z, 0-9 and '-').")(func)


def check_name_options(ctx: click.Context, name: str | None, meta: dict[str, str],
                       ttl: float, registry: RegistryURL | None) -> None:
    """--meta, --ttl and --registry mean something only with --name."""
    if name is not None:
        return
    for option, given in (("--meta", bool(meta)), ("--ttl", ttl != DEFAULT_TTL),
                          ("--registry", registry is not None)):
        if given and ctx.get_parameter_source(option.lstrip("-")) \
                is not click.core.ParameterSource.DEFAULT:
            raise click.UsageError(f"{option} registers nothing without --name (example: "
                                   f"--name users {option} ...)", ctx)


def name_hooks(name: str | None, protocol: str, meta: dict[str, str], ttl: float,
               registry: RegistryURL | None) -> list[Hook]:
    """The host hooks for --name (none without it)."""
    if name is None:
        return []

    def announce(registration: Registration) -> None:
        instance = registration.instance
        state = ("registered" if registration.registered
                 else "registry unreachable, will register")
        click.echo(f"{state} {instance.service} (instance {instance.id}, {instance.protocol}) "
                   f"in {registration.store.url}", err=True)

    return [registration_hook(name, protocol=protocol, meta=meta, ttl=ttl,
                              registry=None if registry is None else str(registry),
                              on_registered=announce)]


__all__ = ["NAME_HELP", "check_name_options", "name_hooks", "name_options"]
