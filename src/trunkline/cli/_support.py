"""What the commands share: the address parameter, listen options, readiness lines, logging to
stderr and one-line error reports (never a traceback). Exit statuses: ``exits``."""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from ..address import Address, FdAddress, FifoAddress, UnixAddress, format_address, parse_address
from ..errors import (
    AddressError,
)
from ..transport import ListenOptions
from .exits import Exit, failure
from .hints import suggest_address, with_suggestion

F = TypeVar("F", bound=Callable[..., Any])


class BadAddress(click.BadParameter):
    """A malformed address on the command line: click's usage message, curl's status 3."""

    exit_code = Exit.BAD_ADDRESS


class AddressParam(click.ParamType):  # type: ignore[type-arg]
    """An endpoint URL, parsed at the command line; a bad one exits 3 with a usage message."""

    name = "URL"

    def __init__(self, *, stream_only: bool = False) -> None:
        self.stream_only = stream_only

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Address:
        if not isinstance(value, str):
            return value  # type: ignore[no-any-return]
        try:
            address = parse_address(value)
        except AddressError as exc:
            raise BadAddress(str(with_suggestion(exc, suggest_address(value))), ctx,
                             param) from None
        if self.stream_only and address.scheme in ("udp", "unixgram"):
            raise BadAddress(f"{value} is a datagram address; this command needs a stream "
                             "address (tcp, tls, unix, fifo, fd)", ctx, param)
        return address


class OctalMode(click.ParamType):  # type: ignore[type-arg]
    name = "MODE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> int:
        if isinstance(value, int):
            return value
        try:
            mode = int(str(value), 8)
        except ValueError:
            self.fail(f"{value!r} is not an octal file mode (example: 0600 or 660)", param, ctx)
        if not 0 <= mode <= 0o777:
            self.fail(f"{value!r} is outside 000..777", param, ctx)
        return mode


def listen_flags(func: F) -> F:
    """``--mode``, ``--allow-uid``, ``--allow-gid``, ``--allow-any-user``, ``--cert``, ``--key``
    for listening commands; read back with ``listen_options(**kwargs)``."""
    options = [
        click.option("--mode", type=OctalMode(), default="0600", show_default=True,
                     help="File mode of Unix socket and FIFO files (octal)."),
        click.option("--allow-uid", "allow_uid", type=int, multiple=True, metavar="UID",
                     help="Admit only local peers with this uid (repeatable; Unix stream "
                          "sockets, FIFOs). An abstract name admits only this server's uid "
                          "unless given this, --allow-gid or --allow-any-user."),
        click.option("--allow-gid", "allow_gid", type=int, multiple=True, metavar="GID",
                     help="Admit local peers with this gid too (repeatable)."),
        click.option("--allow-any-user", "allow_any_user", is_flag=True,
                     help="Admit every local user on abstract names (unix:@name)."),
        click.option("--cert", type=click.Path(exists=True, dir_okay=False),
                     help="Certificate chain (PEM) for tls:// addresses."),
        click.option("--key", type=click.Path(exists=True, dir_okay=False),
                     help="Private key (PEM) for --cert, if not in the same file."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def listen_options(mode: int, allow_uid: tuple[int, ...], allow_gid: tuple[int, ...],
                   cert: str | None, key: str | None, addresses: list[Address],
                   allow_any_user: bool = False) -> ListenOptions:
    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            raise click.BadParameter(f"cannot load {cert}: {exc}", param_hint="--cert") from exc
    elif key is not None:
        raise click.BadParameter("--key needs --cert", param_hint="--key")
    elif any(a.scheme == "tls" for a in addresses):
        raise click.UsageError("tls:// addresses need --cert (and --key if the key is in "
                               "another file)")
    for warning in check_admit_flags(allow_uid, allow_gid, allow_any_user, addresses):
        click.echo(f"warning: {warning}", err=True)
    return ListenOptions(mode=mode, allow_uids=frozenset(allow_uid) if allow_uid else None,
                         allow_gids=frozenset(allow_gid) if allow_gid else None,
                         allow_any_user=allow_any_user, ssl=context)


def check_admit_flags(allow_uid: tuple[int, ...], allow_gid: tuple[int, ...],
                      allow_any_user: bool, addresses: list[Address]) -> list[str]:
    """Admit flags no address can apply are usage errors (a security option must never do
    nothing in silence); the warnings to print for addresses that ignore them."""
    def checks_peers(a: Address) -> bool:  # inherited sockets may be Unix ones: let them try
        return isinstance(a, FifoAddress | FdAddress) or (
            isinstance(a, UnixAddress) and not a.datagram)

    flag = "/".join(name for name, given in (("--allow-uid", allow_uid),
                                             ("--allow-gid", allow_gid)) if given)
    if flag and allow_any_user:
        raise click.UsageError(f"--allow-any-user admits every local user; it cannot be "
                               f"combined with {flag}, which admits only those listed")
    if flag:
        for a in addresses:
            if isinstance(a, UnixAddress) and a.datagram:
                raise click.UsageError(
                    f"{flag} cannot apply to {format_address(a)}: datagram sockets carry no "
                    "peer credentials (SO_PEERCRED). Protect a unixgram path with --mode; an "
                    "abstract unixgram name is open to every local user of this network "
                    "namespace")
        if not any(checks_peers(a) for a in addresses):
            raise click.UsageError(
                f"{flag} applies only to Unix stream sockets (unix:///path, unix:@name), FIFOs "
                "(fifo:///path) and inherited Unix sockets (fd://N); none of "
                f"{', '.join(format_address(a) for a in addresses)} is one")
        return [f"{flag} does not apply to {format_address(a)} (its peers have no local "
                "uid/gid): any peer that reaches it is served" for a in addresses
                if not checks_peers(a)]
    if allow_any_user and not any(
            isinstance(a, FdAddress) or (isinstance(a, UnixAddress) and a.abstract
                                         and not a.datagram) for a in addresses):
        raise click.UsageError(
            "--allow-any-user opens abstract names (unix:@name), which admit only this "
            "server's uid by default; none of "
            f"{', '.join(format_address(a) for a in addresses)} is one. Path sockets and FIFOs "
            "admit by their file mode: use --mode (e.g. 0666) for those")
    return []


def report(command: str, exc: BaseException, *, address: Address | str | None = None,
           listening: bool = False, timeout_hint: str = "") -> NoReturn:
    """Say what went wrong in one line (words, and the fix where there is one) and exit with
    its status from the one table (``exits.failure``)."""
    found = failure(exc, address=address, listening=listening, timeout_hint=timeout_hint)
    fail(command, found.message, found.code)


def fail(command: str, message: str, code: int) -> NoReturn:
    """One clear line on stderr, then exit with ``code``."""
    click.echo(f"trunkline {command}: {message}", err=True)
    sys.exit(code)


def ready(url: str | Address, suffix: str = "") -> None:
    """The readiness line tests and scripts wait on: ``listening on URL``."""
    if not isinstance(url, str):
        url = format_address(url)
    click.echo(f"listening on {url}{suffix}", err=True)


class LineFormatter(logging.Formatter):
    """The CLI's log lines. The time (whole seconds) is formatted once per second: the
    access log writes many lines a second, and ``time.strftime`` per line showed."""

    _second = -1
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        if second != self._second:  # (datefmt is always this formatter's own)
            self._text = super().formatTime(record, datefmt)
            self._second = second
        return self._text


def setup_logging(verbose: int = 0, quiet: bool = False, level: int | None = None) -> None:
    """Log records to stderr, one line each: warnings always, info unless ``quiet``
    (``level``, when given, decides)."""
    if level is None:
        level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger("trunkline")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def saved_blocking(fds: tuple[int, ...] = (0, 1, 2)) -> dict[int, bool]:
    """Blocking flags of the standard descriptors, to restore after pipe transports set
    O_NONBLOCK on them (it is shared with the shell through the terminal)."""
    state: dict[int, bool] = {}
    for fd in fds:
        with contextlib.suppress(OSError):
            state[fd] = os.get_blocking(fd)
    return state


def restore_blocking(state: dict[int, bool]) -> None:
    for fd, blocking in state.items():
        with contextlib.suppress(OSError):
            os.set_blocking(fd, blocking)
