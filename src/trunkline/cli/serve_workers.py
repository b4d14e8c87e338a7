"""``trunkline serve --workers N``: the command's face of ``trunkline.workers``.

This module parses and checks the option and reports; the supervisor (binding once,
forking, restarting, stopping) is the library's ``trunkline.workers.Supervisor``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import click

from ..address import Address
from ..errors import TrunklineError
from ..transport import ListenOptions
from ..workers import Supervisor, WorkerServer, bind_shared, worker_count
from ._support import ready, report

F = TypeVar("F", bound=Callable[..., Any])

WORKERS_HELP = """\b
--workers N (default 1) runs N server processes (0: one per core) that accept from
the same sockets: this process binds every tcp, tls and unix address once, forks the
workers, and only supervises. A worker that dies is logged and replaced (one that
keeps dying right after its start is retried after a growing delay); connections
wait in the socket's queue meanwhile. SIGTERM/SIGINT stop every worker gracefully,
as one server stops (a second signal forces). FIFO and datagram addresses are served
by worker 0 alone. Not with --reload or --trace (one process each)."""


def workers_option(command: F) -> F:
    return click.option(
        "--workers", type=click.IntRange(min=0), default=1, show_default=True, metavar="N",
        help="Server processes sharing the sockets; 0: one per core. See below.")(command)


def check_workers(workers: int, reload: bool, tracing: bool) -> None:
    """Options that cannot go with more than one worker are usage errors."""
    if workers == 1:
        return
    if reload:
        raise click.UsageError("--workers and --reload cannot be combined: --reload runs one "
                               "server and restarts it on a change; drop one of them")
    if tracing:
        raise click.UsageError("--trace/--trace-file follow one process; drop --workers "
                               "(or use --workers 1) to trace")


def run_workers(start: Callable[[list[Address]], Awaitable[WorkerServer]],
                addresses: Sequence[Address], options: ListenOptions, workers: int,
                grace: float) -> int:
    """Bind, fork and supervise; "listening on URL" once every worker is ready."""
    count = worker_count(workers)
    try:
        shared = bind_shared(addresses, options, workers=count)
        supervisor = Supervisor(start, addresses, shared, workers=count, grace=grace,
                                on_ready=_announce)
    except (TrunklineError, OSError) as exc:
        report("serve", exc, listening=True)
    return supervisor.run()


def _announce(urls: list[str]) -> None:
    for url in urls:
        ready(url)


__all__ = ["WORKERS_HELP", "check_workers", "run_workers", "workers_option"]
