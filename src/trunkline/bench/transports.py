"""Every socket kind on this machine: 64-byte round-trip latency and bulk throughput, each
trunkline against the raw-uvloop baseline, side by side.

- Latency is the ping-pong workload (``pingpong.py``: raw and trunkline echo servers at once,
  one client alternating between them in blocks), one kind at a time.
- Bulk throughput of the stream kinds: one connection, ``bulk_size`` bytes one way
  (``stream_bulk.py``), sink pinned to CPU 0, sender to CPU 1; MiB/s = bytes / (the sink got
  the last byte - the sender started). Datagram kinds (no flow control between the ends over
  UDP): the ``udp`` bench's sender at full speed for ``datagram_seconds``, ``datagram_size``
  bytes each; MiB/s = payload delivered per second of sending, with the share lost beside it.
  Bulk rounds interleave raw and trunkline.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .pingpong import KINDS as PINGPONG_KINDS
from .pingpong import PLACEMENTS, PingPongResult, run_pingpong, server_url_for
from .process import BenchError, Worker, read_json_line, run_worker
from .udp import measure_once

#: The kinds compared, in table order (``fd`` is TCP once connected: see pingpong)
KINDS = ("tcp4", "tcp6", "unix", "abstract", "fifo", "udp", "unixgram")
DEFAULT_KINDS = ("tcp4", "unix", "abstract", "fifo", "udp", "unixgram")
DATAGRAM_KINDS = ("udp", "unixgram")
IMPLS = ("raw", "trunkline")
SINK_CPU, SENDER_CPU = 0, 1
MIB = 1 << 20

Progress = Callable[[int, int, str], None]
_names = itertools.count()


@dataclass(frozen=True)
class BulkRun:
    mib_per_s: float
    lost_percent: float | None = None  # datagram kinds only


@dataclass
class TransportsResult:
    kinds: list[str]
    placement: str
    rounds: int  # timed round trips per side
    size: int  # bytes per ping
    bulk_size: int
    bulk_rounds: int
    datagram_size: int
    datagram_seconds: float
    latency: dict[str, PingPongResult] = field(default_factory=dict)
    bulk: dict[tuple[str, str], list[BulkRun]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def rates(self, kind: str, impl: str) -> list[float]:
        return [run.mib_per_s for run in self.bulk.get((kind, impl), [])]

    def bulk_median(self, kind: str, impl: str) -> float | None:
        rates = self.rates(kind, impl)
        return statistics.median(rates) if rates else None

    def bulk_ratio(self, kind: str) -> float | None:
        ours, theirs = self.bulk_median(kind, "trunkline"), self.bulk_median(kind, "raw")
        return None if ours is None or not theirs else ours / theirs

    def lost_percent(self, kind: str, impl: str) -> float | None:
        lost = [r.lost_percent for r in self.bulk.get((kind, impl), [])
                if r.lost_percent is not None]
        return statistics.median(lost) if lost else None

    def vs_tcp(self, kind: str, impl: str) -> float | None:
        """This kind's bulk median over TCP loopback's (the seed's claim: Unix sockets
        carry about 2x the bytes)."""
        ours, tcp = self.bulk_median(kind, impl), self.bulk_median("tcp4", impl)
        return None if ours is None or not tcp else ours / tcp

    def to_json(self) -> dict[str, Any]:
        rows = []
        for kind in self.kinds:
            ping = self.latency.get(kind)
            rows.append({
                "kind": kind, "what": PINGPONG_KINDS[kind],
                "latency": {
                    "raw": ping.raw.to_json() if ping and ping.raw else None,
                    "trunkline": ping.trunkline.to_json() if ping and ping.trunkline else None,
                    "ratio_p50": ping.ratio if ping else None,
                    "meets_target": ping.meets_target if ping else None,
                    "error": ping.error if ping else None},
                "bulk": {impl: {"mib_per_s": self.rates(kind, impl),
                                "median_mib_per_s": self.bulk_median(kind, impl),
                                "lost_percent": [r.lost_percent for r in
                                                 self.bulk.get((kind, impl), [])],
                                "vs_tcp4": self.vs_tcp(kind, impl)} for impl in IMPLS},
                "bulk_ratio": self.bulk_ratio(kind)})
        return {"placement": self.placement, "cpus": PLACEMENTS[self.placement],
                "rounds": self.rounds, "size": self.size, "bulk_size": self.bulk_size,
                "bulk_rounds": self.bulk_rounds, "datagram_size": self.datagram_size,
                "datagram_seconds": self.datagram_seconds, "kinds": rows,
                "errors": self.errors}


def run_transports(kinds: Sequence[str] = DEFAULT_KINDS, *, placement: str = "same",
                   rounds: int = 20_000, warmup: int = 2_000, size: int = 64,
                   block: int = 1_000, bulk_size: int = 256 * MIB, bulk_rounds: int = 3,
                   datagram_size: int = 8192, datagram_seconds: float = 1.0,
                   progress: Progress | None = None) -> TransportsResult:
    """Latency, then bulk throughput, of every kind; see the module docstring."""
    for kind in kinds:
        if kind not in KINDS:
            raise BenchError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    if placement not in PLACEMENTS:
        raise BenchError(f"unknown placement {placement!r}; choose from same, cross")
    result = TransportsResult(list(kinds), placement, rounds, size, bulk_size, bulk_rounds,
                              datagram_size, datagram_seconds)
    total = len(kinds) * (1 + bulk_rounds * len(IMPLS))
    done = 0

    def step(what: str) -> None:
        nonlocal done
        if progress is not None:
            progress(done, total, what)
        done += 1

    for kind in kinds:
        step(f"{kind}: {size}-byte round trips")
        [result.latency[kind]] = run_pingpong([kind], [placement], rounds=rounds,
                                              warmup=warmup, size=size, block=block)
    workdir = tempfile.mkdtemp(prefix="tlt-", dir="/tmp")  # short: sun_path has 107 bytes
    try:
        for round_no in range(bulk_rounds):
            turn = IMPLS if round_no % 2 == 0 else IMPLS[::-1]
            for kind in kinds:
                for impl in turn:
                    step(f"round {round_no + 1}: {impl} {kind} bulk")
                    try:
                        run = (_bulk_datagram(kind, impl, datagram_size, datagram_seconds,
                                              workdir) if kind in DATAGRAM_KINDS
                               else _bulk_stream(kind, impl, bulk_size, workdir))
                    except BenchError as exc:
                        result.errors[f"{kind}/{impl} bulk"] = str(exc)
                        continue
                    result.bulk.setdefault((kind, impl), []).append(run)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if progress is not None:
        progress(total, total, "done")
    return result


def _bulk_stream(kind: str, impl: str, size: int, workdir: str) -> BulkRun:
    url = server_url_for(kind, workdir, f"bulk-{impl}{next(_names)}")
    timeout = 60 + size / (20 * MIB)  # generous: 20 MiB/s would still finish
    with Worker(["bulksink", "--impl", impl, "--url", url, "--size", str(size)],
                cpu=SINK_CPU) as sink:
        bound = sink.wait_ready()
        sent = run_worker(["bulksend", "--impl", impl, "--url", bound, "--size", str(size)],
                          cpu=SENDER_CPU, timeout=timeout)
        got = read_json_line(sink, timeout)
    if got["bytes"] < size:
        raise BenchError(f"{impl} over {kind}: the sink got {got['bytes']} of {size} bytes")
    seconds = (got["t_full_ns"] - sent["t_start_ns"]) / 1e9
    return BulkRun(size / MIB / seconds if seconds > 0 else 0.0)


def _bulk_datagram(kind: str, impl: str, size: int, seconds: float, workdir: str) -> BulkRun:
    health = measure_once(kind, impl, size=size, pps=0, seconds=seconds, dont_fragment=False,
                          workdir=workdir)
    mib = health.bytes / MIB / health.send_seconds if health.send_seconds > 0 else 0.0
    return BulkRun(mib, health.lost_percent)


__all__ = ["DEFAULT_KINDS", "IMPLS", "KINDS", "BulkRun", "TransportsResult", "run_transports"]
