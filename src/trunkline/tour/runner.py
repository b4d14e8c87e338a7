"""Run the tour: one echo service on every leg's addresses, each leg in turn, then cleanup.

Everything the tour creates lives in a fresh private temp dir (mode 0700) or under an
abstract name it picked; both are checked to be gone at the end, and the result says so.
The service admits only our own uid on local sockets (abstract names are not private).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ..address import Address
from ..aio.servers import serve
from ..errors import TrunklineError
from ..transport import ListenOptions
from .echo import WatchedEcho
from .legs import Leg, TourContext, default_legs
from .model import Cleanup, LegResult, TourResult

DEFAULT_ROUNDS = 2000
MESSAGE_BYTES = 64


def loop_name() -> str:
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


def host_info() -> dict[str, str]:
    uname = platform.uname()
    return {"python": platform.python_version(), "kernel": f"{uname.system} {uname.release}",
            "machine": uname.machine, "cpus": str(os.cpu_count() or 0)}


async def run_tour(legs: Sequence[Leg] | None = None, *, rounds: int = DEFAULT_ROUNDS,
                   size: int = MESSAGE_BYTES, timeout: float = 10.0,
                   progress: Callable[[str], None] | None = None) -> TourResult:
    """Run ``legs`` (default: every registered leg) and return what they found."""
    chosen = list(default_legs() if legs is None else legs)
    say = progress or (lambda message: None)
    tmpdir = Path(tempfile.mkdtemp(prefix="trunkline-tour-"))  # mode 0700: private to us
    echo = WatchedEcho()
    result = TourResult([], rounds, size, loop_name(), host_info())
    ctx: TourContext | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            ctx = TourContext(tmpdir, rounds, size, timeout, echo, stack, progress=say)
            wanted = [leg.echo_addresses(ctx) for leg in chosen]
            urls = [url for group in wanted for url in group]
            bound: list[Address] = []
            if urls:
                say(f"starting the echo service on {len(urls)} addresses")
                server = await serve(
                    echo.stream, *urls, datagram_handler=echo.datagram,
                    options=ListenOptions(allow_uids=frozenset({os.getuid()})),
                    tracer=ctx.server_tracer)
                stack.push_async_callback(server.aclose, 2.0)
                bound = server.addresses
            start = 0
            for leg, group in zip(chosen, wanted, strict=True):
                mine, start = bound[start:start + len(group)], start + len(group)
                say(f"{leg.title}: connecting")
                result.legs.append(await _run_leg(leg, ctx, mine))
    except (TrunklineError, OSError) as exc:
        result.error = str(exc) or type(exc).__name__
    finally:
        result.cleanup = _clean_up(tmpdir, ctx.abstract_names if ctx else [])
    return result


async def _run_leg(leg: Leg, ctx: TourContext, bound: list[Address]) -> LegResult:
    try:
        return await leg.run(ctx, bound)
    except (TrunklineError, OSError, TimeoutError) as exc:
        failed = leg.new_result()
        failed.error = (str(exc) or type(exc).__name__) if not isinstance(
            exc, TimeoutError) or str(exc) else f"no answer within {ctx.timeout} s"
        return failed


def _clean_up(tmpdir: Path, abstract_names: list[str]) -> Cleanup:
    leftovers = sorted(p.name for p in tmpdir.iterdir()) if tmpdir.exists() else []
    shutil.rmtree(tmpdir, ignore_errors=True)
    return Cleanup(str(tmpdir), leftovers, not tmpdir.exists(),
                   [n for n in abstract_names if _abstract_bound(n)])


def _abstract_bound(name: str) -> bool:
    """Whether a Unix socket is still bound to the abstract ``name`` (``/proc/net/unix``)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as table:
            return any(line.rstrip("\n").endswith(" @" + name) for line in table)
    except OSError:
        return False
