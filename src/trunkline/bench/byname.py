"""What a name costs: a call by name (the resolver's cached answer) against the same call to
the address the name resolves to, side by side.

One process serves a tiny HTTP app and a byte echo on an abstract Unix name (the address a
caller on this host is given), registered as services in a registry file of its own. Two
workloads, each run both ways in alternating blocks so the machine's noise falls on both:

- HTTP keep-alive: ``Client.get("http+svc://bench-http/")`` against
  ``Client.get("http+unix://%40name/")``, one kept-alive connection each; the time per
  request is a block's time over its requests.
- raw: a new connection plus one 64-byte round trip, ``trunkline.connect("svc://bench-raw")``
  against ``trunkline.connect("unix:@name")`` (on an open connection the bytes take the same
  path either way: the name is looked up only when connecting).

The result is the median of the per-block figures, and the ratio by name / by address.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True)
class Pair:
    """One workload by name and by address: median seconds per operation."""

    workload: str
    by_name_s: float
    direct_s: float
    blocks: int
    per_block: int
    by_name_blocks: list[float] = field(default_factory=list)
    direct_blocks: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.by_name_s / self.direct_s if self.direct_s else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


Progress = Callable[[int, int, str], None]


async def _alternate(by_name: Callable[[], Awaitable[None]],
                     direct: Callable[[], Awaitable[None]], blocks: int, per_block: int,
                     progress: Progress, what: str) -> tuple[list[float], list[float]]:
    named: list[float] = []
    plain: list[float] = []
    for turn in range(blocks):
        progress(turn, blocks, what)
        order = [(by_name, named), (direct, plain)]
        if turn % 2:
            order.reverse()  # neither side always goes first
        for op, out in order:
            start = time.perf_counter()
            for _ in range(per_block):
                await op()
            out.append((time.perf_counter() - start) / per_block)
    return named, plain


async def by_name_vs_direct(*, blocks: int = 20, http_per_block: int = 500,
                            raw_per_block: int = 100,
                            progress: Progress = lambda done, total, what: None
                            ) -> list[Pair]:
    """Both workloads (see the module docstring); the registry is a fresh SQLite file."""
    import trunkline
    from trunkline.registry import Resolver, open_registry, registration_hook
    from trunkline.server.run import AppServer

    workdir = tempfile.mkdtemp(prefix="tl-bench-byname-")
    registry = f"sqlite://{workdir}/registry.db"
    tag = os.urandom(4).hex()

    async def echo(stream: trunkline.Stream) -> None:
        while data := await stream.read():
            stream.write(data)

    http_server = AppServer(_hello, f"unix:@tl-bench-http-{tag}", hooks=[
        registration_hook("bench-http", protocol="http", registry=registry)])
    raw_server = await trunkline.serve(echo, f"unix:@tl-bench-raw-{tag}", name="bench-raw",
                                       registry=registry)
    pairs = []
    try:
        await http_server.start()
        async with Resolver(open_registry(registry), owns_store=True) as names, \
                trunkline.Client(registry=names) as named_client, \
                trunkline.Client() as plain_client:
            direct_url = f"http+unix://{quote('@tl-bench-http-' + tag, safe='')}/"

            async def http_by_name() -> None:
                await named_client.get("http+svc://bench-http/")

            async def http_direct() -> None:
                await plain_client.get(direct_url)

            await http_by_name()  # the first call reads the registry; the rest are cached
            await http_direct()
            named, plain = await _alternate(http_by_name, http_direct, blocks, http_per_block,
                                            progress, "http keep-alive")
            pairs.append(Pair("http keep-alive GET", statistics.median(named),
                              statistics.median(plain), blocks, http_per_block, named, plain))

            payload = b"x" * 64
            raw_url = raw_server.urls[0]

            async def round_trip(url: str) -> None:
                stream = await trunkline.connect(url, registry=names)
                stream.write(payload)
                await stream.readexactly(len(payload))
                stream.close()

            async def raw_by_name() -> None:
                await round_trip("svc://bench-raw")

            async def raw_direct() -> None:
                await round_trip(raw_url)

            await raw_by_name()
            named, plain = await _alternate(raw_by_name, raw_direct, blocks, raw_per_block,
                                            progress, "raw connect")
            pairs.append(Pair("raw connect + 64 B round trip", statistics.median(named),
                              statistics.median(plain), blocks, raw_per_block, named, plain))
    finally:
        await raw_server.aclose()
        await http_server.aclose()
        shutil.rmtree(workdir, ignore_errors=True)
    return pairs


def byname_table(pairs: list[Pair]) -> Any:
    """The rich table: per workload, by name and by address (median per operation) and the
    ratio against the 1.05x target."""
    from rich.table import Table

    table = Table(title="a call by name (cached) vs the same call by address",
                  header_style="bold")
    for name, justify in (("workload", "left"), ("by name", "right"),
                          ("by address", "right"), ("ratio", "right"), ("target", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for pair in pairs:
        table.add_row(pair.workload, f"{pair.by_name_s * 1e6:.1f} us",
                      f"{pair.direct_s * 1e6:.1f} us", f"{pair.ratio:.3f}x",
                      f"<= {TARGET}x")
    return table


def byname_chart(pairs: list[Pair], footnote: str = "") -> Any:
    """Per workload a panel: by name and by address (us per operation, median of the
    blocks, whiskers min..max of the blocks)."""
    from .plot import Bar, Chart, Group, Panel, ratio_note, spread

    panels = []
    for pair in pairs:
        bars = []
        for peer, value, samples in (("by name", pair.by_name_s, pair.by_name_blocks),
                                     ("by address", pair.direct_s, pair.direct_blocks)):
            low, high = spread([b * 1e6 for b in samples])
            bars.append(Bar(peer, value * 1e6, low, high))
        note = ratio_note(pair.by_name_s, pair.direct_s, "by address")
        panels.append(Panel(pair.workload, "us per operation (lower is better)",
                            [Group(f"{pair.per_block} per block", bars, note)],
                            higher_is_better=False))
    blocks = max((p.blocks for p in pairs), default=0)
    return Chart("A call by name vs the same call by address (same socket)", panels,
                 bars=f"median of {blocks} alternating blocks",
                 whiskers="min..max of the blocks; ratio = by name / by address",
                 footnote=footnote, peers=["by name", "by address"])


TARGET = 1.05

__all__ = ["TARGET", "Pair", "by_name_vs_direct", "byname_chart", "byname_table"]
