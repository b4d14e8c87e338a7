"""The ``trunkline`` command group. Each command lives in its own module under ``cli/``."""

from __future__ import annotations

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


def main() -> None:
    from . import commands  # noqa: F401  (registers the commands)

    cli()
