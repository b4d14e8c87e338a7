"""HTTP server requests per second: trunkline against uvicorn and granian, as users run them.

Hello world, keep-alive, ``connections`` connections; each server started as its command line
(``http_servers.py``), over TCP (load from ``wrk``) and a Unix socket (``h2load --h1``). Cases:
transport x workers x access log. With one worker the server is pinned to CPU 0 and the load
generator to CPU 1 (``taskset``); with more, nothing is pinned.

Rounds interleave the servers (the order rotates each round), so a change in the machine's
load hits them alike; each measurement starts a fresh server, warms it up, then counts. The
table shows per cell the median and the best round and the ratios of both against uvicorn and
granian, and the server's CPU per request (user + system of the server and its workers, from
/proc), which moves less with the machine's load than the rates do.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .http_servers import (
    DEFAULT_SERVERS,
    KINDS,
    SERVERS,
    Case,
    RunningServer,
    ServerUnsupportedError,
    available,
    missing_tools,
    run_load,
)
from .process import BenchError

BASELINE = "uvicorn"
SERVER_CPU, LOAD_CPU = 0, 1

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class HttpRun:
    rate: float  # requests per second
    requests: int
    bad: int  # non-2xx answers and socket errors
    cpu_us: float | None  # server CPU per request, microseconds
    load_us: float | None = None  # the load generator's CPU per request, microseconds


@dataclass
class HttpBenchResult:
    servers: list[str]
    cases: list[Case]
    rounds: int
    seconds: int
    warmup: int
    connections: int
    runs: dict[tuple[str, Case], list[HttpRun]] = field(default_factory=dict)
    #: (server, case) -> why that cell has no figures (not installed, option refused, failed)
    missing: dict[tuple[str, Case], str] = field(default_factory=dict)
    #: the cells whose server refused the case's options (see ServerUnsupportedError)
    unsupported: set[tuple[str, Case]] = field(default_factory=set)

    def rates(self, server: str, case: Case) -> list[float]:
        return [r.rate for r in self.runs.get((server, case), [])]

    def median(self, server: str, case: Case) -> float | None:
        rates = self.rates(server, case)
        return statistics.median(rates) if rates else None

    def best(self, server: str, case: Case) -> float | None:
        rates = self.rates(server, case)
        return max(rates) if rates else None

    def cpu_us(self, server: str, case: Case) -> float | None:
        cpu = [r.cpu_us for r in self.runs.get((server, case), []) if r.cpu_us is not None]
        return statistics.median(cpu) if cpu else None

    def load_us(self, server: str, case: Case) -> float | None:
        cpu = [r.load_us for r in self.runs.get((server, case), []) if r.load_us is not None]
        return statistics.median(cpu) if cpu else None

    def ratio(self, server: str, case: Case, against: str, *, best: bool = False
              ) -> float | None:
        """Medians' ratio, or the best rounds' (load on a shared machine only ever slows a
        run down, so the best rounds are disturbed least)."""
        rate = self.best if best else self.median
        ours, theirs = rate(server, case), rate(against, case)
        return None if ours is None or not theirs else ours / theirs

    def scaling(self, server: str, case: Case, *, best: bool = False) -> float | None:
        """``case``'s rate over the same case with one worker (medians, or best rounds):
        what the extra workers bought. None for one worker or a missing cell."""
        if case.workers == 1:
            return None
        one = Case(case.kind, 1, case.access_log)
        rate = self.best if best else self.median
        ours, single = rate(server, case), rate(server, one)
        return None if ours is None or not single else ours / single

    def ceiling(self, server: str, case: Case) -> float | None:
        """The most ``case``'s workers could buy over one worker on this machine, when the
        load generator shares its cores: from the one-worker run's CPU per request of the
        server (s) and of the load generator (w), N workers on C cores reach at most
        min(N/s, C/(s+w), 1/w) requests per second (the load generator is one thread), one
        worker at most min(1/s, 1/w). The cheaper the server per request, the larger the load
        generator's share of the cores, and the less a second worker can add."""
        if case.workers == 1:
            return None
        one = Case(case.kind, 1, case.access_log)
        s, w = self.cpu_us(server, one), self.load_us(server, one)
        if not s or not w:
            return None
        cores = len(os.sched_getaffinity(0))
        return min(case.workers / s, cores / (s + w), 1 / w) / min(1 / s, 1 / w)

    def to_json(self) -> dict[str, Any]:
        cells = []
        for case in self.cases:
            for server in self.servers:
                runs = self.runs.get((server, case), [])
                cells.append({
                    "server": server, "kind": case.kind, "workers": case.workers,
                    "access_log": case.access_log, "label": case.label,
                    "pinned": case.pinned,
                    "rates": [r.rate for r in runs], "requests": [r.requests for r in runs],
                    "bad": [r.bad for r in runs],
                    "cpu_us": [r.cpu_us for r in runs],
                    "median": self.median(server, case), "best": self.best(server, case),
                    "min": min(self.rates(server, case), default=None),
                    "max": max(self.rates(server, case), default=None),
                    "median_cpu_us": self.cpu_us(server, case),
                    "load_cpu_us": [r.load_us for r in runs],
                    "median_load_cpu_us": self.load_us(server, case),
                    "vs_uvicorn": self.ratio(server, case, "uvicorn"),
                    "best_vs_uvicorn": self.ratio(server, case, "uvicorn", best=True),
                    "vs_granian": self.ratio(server, case, "granian"),
                    "best_vs_granian": self.ratio(server, case, "granian", best=True),
                    "vs_1_worker": self.scaling(server, case),
                    "best_vs_1_worker": self.scaling(server, case, best=True),
                    "ceiling_vs_1_worker": self.ceiling(server, case),
                    "missing": self.missing.get((server, case)),
                    "unsupported": (server, case) in self.unsupported})
        return {"seconds": self.seconds, "warmup": self.warmup, "rounds": self.rounds,
                "connections": self.connections, "servers": self.servers, "cells": cells}


def make_cases(kinds: Sequence[str], workers: Sequence[int], access_logs: Sequence[bool]
               ) -> list[Case]:
    return [Case(kind, n, log) for log in access_logs for n in workers for kind in kinds]


def run_http_bench(servers: Sequence[str] = DEFAULT_SERVERS, cases: Sequence[Case] = (), *,
                   rounds: int = 3, seconds: int = 3, warmup: int = 1, connections: int = 50,
                   progress: Progress | None = None) -> HttpBenchResult:
    """Measure every server in every case, ``rounds`` interleaved rounds."""
    for server in servers:
        if server not in SERVERS:
            raise BenchError(f"unknown server {server!r}; choose from {', '.join(SERVERS)}")
    cases = list(cases) or make_cases(KINDS, [1], [False])
    for case in cases:
        if case.kind not in KINDS:
            raise BenchError(f"unknown transport {case.kind!r}; choose from tcp, unix")
    missing = missing_tools(sorted({c.kind for c in cases}), any(c.pinned for c in cases))
    if missing:
        raise BenchError(f"missing {', '.join(missing)}: install them (Debian: apt-get install "
                         "wrk nghttp2-client util-linux)")
    result = HttpBenchResult(list(servers), cases, rounds, seconds, warmup, connections)
    order = []
    for server in servers:
        why = available(server)
        if why is None:
            order.append(server)
        else:
            result.missing.update({(server, case): why for case in cases})
    total, done = rounds * len(cases) * len(order), 0
    workdir = Path(tempfile.mkdtemp(prefix="tlh-", dir="/tmp"))  # short: sun_path limit
    try:
        for round_no in range(rounds):
            shift = round_no % max(1, len(order))
            turn = order[shift:] + order[:shift]
            for case in cases:
                for server in turn:
                    if progress is not None:
                        progress(done, total, f"round {round_no + 1}: {server} {case.label}")
                    done += 1
                    if (server, case) in result.missing and (server, case) not in result.runs:
                        continue  # refused or failed before: no point asking again
                    try:
                        run = _measure(server, case, seconds, warmup, connections, workdir)
                    except BenchError as exc:
                        result.missing[(server, case)] = str(exc)
                        if isinstance(exc, ServerUnsupportedError):
                            result.unsupported.add((server, case))
                        continue
                    result.runs.setdefault((server, case), []).append(run)
        if progress is not None:
            progress(total, total, "done")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _measure(server: str, case: Case, seconds: int, warmup: int, connections: int,
             workdir: Path) -> HttpRun:
    server_cpu, load_cpu = (SERVER_CPU, LOAD_CPU) if case.pinned else (None, None)
    running = RunningServer(server, case, workdir, server_cpu)
    try:
        if warmup:
            run_load(case.kind, running.where, warmup, connections, load_cpu)
        before = running.cpu_seconds()
        load = run_load(case.kind, running.where, seconds, connections, load_cpu)
        used = running.cpu_seconds() - before
        if running.proc.poll() is not None:
            raise BenchError(f"{server} exited during the run: {running.log_tail()}")
    finally:
        running.stop()
    if load.requests == 0:
        raise BenchError(f"{server} answered no request over {case.kind}: "
                         f"{running.log_tail()}")
    load_us = None if load.cpu_seconds is None else load.cpu_seconds / load.requests * 1e6
    return HttpRun(load.rate, load.requests, load.bad, used / load.requests * 1e6, load_us)


__all__ = ["BASELINE", "Case", "HttpBenchResult", "HttpRun", "ServerUnsupportedError",
           "make_cases", "run_http_bench"]
