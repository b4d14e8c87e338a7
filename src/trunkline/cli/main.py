"""The ``trunkline`` command group. Each command lives in its own module under ``cli/``.

Options every command has are added here, once, to each registered command: ``--no-color``
(colour is also off with the ``NO_COLOR`` variable, no-color.org, and whenever the output is
not a terminal).
"""

from __future__ import annotations

import os

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="trunkline")
def cli() -> None:
    """trunkline: how services talk to each other over sockets.

    \b
    Addresses: tcp://127.0.0.1:8000  tcp://[::1]:8000  tls://host:8443  udp://127.0.0.1:9000
               unix:///run/app.sock  unix:app.sock  unix:@abstract  unixgram:@name
               fifo:///tmp/app.fifo  fd://3  svc://name
    """


def _no_color(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        os.environ["NO_COLOR"] = "1"  # rich, and our own checks, read it


def _add_common_options(command: click.Command) -> None:
    if not any(p.name == "no_color" for p in command.params):
        command.params.append(click.Option(
            ["--no-color"], is_flag=True, expose_value=False, is_eager=True,
            callback=_no_color, help="No colour (as the NO_COLOR environment variable)."))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_common_options(sub)


def main() -> None:
    from . import commands  # noqa: F401  (registers the commands)

    _add_common_options(cli)
    cli()
