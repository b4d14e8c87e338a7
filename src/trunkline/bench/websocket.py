"""WebSocket echo round trips per second: trunkline against websockets, aiohttp and picows.

A matrix, measured side by side in one run: each implementation's own client against its own
echo server (``ws_peers.py``), 32-byte binary messages, compression off everywhere, uvloop
everywhere, over TCP loopback and a Unix socket (where the implementation supports it), both
sequential ping-pong (1 message in flight) and pipelined (``inflight`` messages in flight).

Every server runs in its own process pinned to CPU 0 for the whole run; every measurement is
a fresh client process pinned to CPU 1 that warms up, then counts round trips for ``seconds``.
Rounds interleave the implementations (the order rotates each round), so a change in the
machine's load hits all of them alike; the figure per cell is the median over rounds (the
best round is kept too). The server's CPU time per round trip comes from
``/proc/PID/schedstat`` around each measurement, the client's from its own ``process_time``.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text

from .process import READY, BenchError, pinnable, worker_env
from .ws_peers import IMPLS, TRANSPORTS, UNSUPPORTED, available

#: mode name -> messages in flight (pipelined takes its count from ``inflight``)
MODES = ("seq", "pipe")
BASELINE = "aiohttp"  # the target: trunkline >= 1.0x this
GOAL = "picows"  # the team's goal
SERVER_CPU, CLIENT_CPU = 0, 1

#: progress(done, total, what is running now)
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class WsRun:
    """One measurement: a client process against one server."""

    rate: float  # round trips per second
    server_us: float | None  # server CPU per round trip, microseconds
    client_us: float  # client CPU per round trip, microseconds


@dataclass
class WsBenchResult:
    impls: list[str]
    transports: list[str]
    modes: list[str]
    inflight: int
    size: int
    seconds: float
    rounds: int
    runs: dict[tuple[str, str, str], list[WsRun]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # "impl" or "impl/transport" -> why

    def median(self, impl: str, transport: str, mode: str) -> float | None:
        runs = self.runs.get((impl, transport, mode))
        return statistics.median(r.rate for r in runs) if runs else None

    def best(self, impl: str, transport: str, mode: str) -> float | None:
        runs = self.runs.get((impl, transport, mode))
        return max(r.rate for r in runs) if runs else None

    def cpu(self, impl: str, transport: str, mode: str) -> tuple[float | None, float | None]:
        """Median (server, client) CPU microseconds per round trip."""
        runs = self.runs.get((impl, transport, mode))
        if not runs:
            return None, None
        server = [r.server_us for r in runs if r.server_us is not None]
        return (statistics.median(server) if server else None,
                statistics.median(r.client_us for r in runs))

    def ratio(self, impl: str, transport: str, mode: str, against: str, *, best: bool = False
              ) -> float | None:
        """Medians' ratio (or best runs', which a shared machine disturbs least: load only
        ever slows a run down)."""
        rate = self.best if best else self.median
        ours, theirs = rate(impl, transport, mode), rate(against, transport, mode)
        return None if ours is None or not theirs else ours / theirs

    def meets_target(self) -> bool | None:
        """trunkline's best at or above aiohttp's in every cell both measured (None: nothing
        to judge)."""
        ratios = [self.ratio("trunkline", t, m, BASELINE, best=True) for t in self.transports
                  for m in self.modes]
        known = [r for r in ratios if r is not None]
        return None if not known else all(round(r, 2) >= 1.0 for r in known)

    def to_json(self) -> dict[str, Any]:
        cells = []
        for transport in self.transports:
            for mode in self.modes:
                for impl in self.impls:
                    runs = self.runs.get((impl, transport, mode), [])
                    server, client = self.cpu(impl, transport, mode)
                    cells.append({
                        "impl": impl, "transport": transport, "mode": mode,
                        "inflight": 1 if mode == "seq" else self.inflight,
                        "rates": [r.rate for r in runs],
                        "median": self.median(impl, transport, mode),
                        "best": self.best(impl, transport, mode),
                        "server_cpu_us": server, "client_cpu_us": client,
                        "vs_aiohttp": self.ratio(impl, transport, mode, BASELINE),
                        "vs_picows": self.ratio(impl, transport, mode, GOAL),
                        "best_vs_aiohttp": self.ratio(impl, transport, mode, BASELINE,
                                                      best=True),
                        "best_vs_picows": self.ratio(impl, transport, mode, GOAL, best=True)})
        return {"size": self.size, "seconds": self.seconds, "rounds": self.rounds,
                "inflight": self.inflight, "cells": cells, "errors": self.errors,
                "meets_target": self.meets_target()}


# --------------------------------------------------------------------------- processes


def _command(args: Sequence[str], cpu: int) -> list[str]:
    cmd = [sys.executable, "-m", "trunkline.bench.ws_peers", *args]
    return ["taskset", "-c", str(cpu), *cmd] if pinnable(cpu) else cmd


class _Server:
    """One implementation's echo server process, pinned to SERVER_CPU."""

    def __init__(self, impl: str, unix_path: str | None, timeout: float = 20.0) -> None:
        args = ["serve", "--impl", impl] + (["--unix", unix_path] if unix_path else [])
        self.proc = subprocess.Popen(_command(args, SERVER_CPU), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=worker_env())
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.startswith(READY):
            self.stop()
            raise BenchError(f"{impl} server did not start: "
                             f"{_tail(self._stderr()) or line or 'no output'}")
        self.where: dict[str, str] = json.loads(line[len(READY):])

    def cpu_ns(self) -> int | None:
        try:
            with open(f"/proc/{self.proc.pid}/schedstat") as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _tail(text: str, lines: int = 4) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def _client(impl: str, transport: str, where: str, inflight: int, seconds: float,
            warmup: float, size: int) -> dict[str, Any]:
    args = ["client", "--impl", impl, "--transport", transport, "--where", where,
            "--inflight", str(inflight), "--seconds", str(seconds), "--warmup", str(warmup),
            "--size", str(size)]
    try:
        done = subprocess.run(_command(args, CLIENT_CPU), capture_output=True,
                              timeout=seconds + warmup + 60, env=worker_env(),
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{impl} client over {transport} did not finish") from exc
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode != 0 or not lines:
        raise BenchError(f"{impl} client over {transport} failed (exit {done.returncode}): "
                         f"{_tail(done.stderr.decode(errors='replace')) or 'no output'}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --------------------------------------------------------------------------- the run


def run_ws_bench(impls: Sequence[str] = IMPLS, transports: Sequence[str] = TRANSPORTS,
                 modes: Sequence[str] = MODES, *, rounds: int = 3, seconds: float = 2.0,
                 warmup: float = 0.3, size: int = 32, inflight: int = 16,
                 progress: Progress | None = None) -> WsBenchResult:
    """Run the matrix; see the module docstring."""
    for name, values, allowed in (("implementation", impls, IMPLS),
                                  ("transport", transports, TRANSPORTS),
                                  ("mode", modes, MODES)):
        for value in values:
            if value not in allowed:
                raise BenchError(f"unknown {name} {value!r}; choose from {', '.join(allowed)}")
    result = WsBenchResult(list(impls), list(transports), list(modes), inflight, size, seconds,
                           rounds)
    workdir = tempfile.mkdtemp(prefix="tlws-", dir="/tmp")  # short: sun_path has 107 bytes
    servers: dict[str, _Server] = {}
    try:
        for impl in impls:
            why = available(impl)
            if why is not None:
                result.errors[impl] = why
                continue
            try:
                servers[impl] = _Server(impl, os.path.join(workdir, f"{impl}.sock")
                                        if "unix" in transports else None)
            except BenchError as exc:
                result.errors[impl] = str(exc)
        for impl in servers:
            for transport in transports:
                why = UNSUPPORTED.get(impl, {}).get(transport)
                if why is not None:
                    result.errors[f"{impl}/{transport}"] = why
        cases = [(t, m) for t in transports for m in modes]
        order = list(servers)
        total = rounds * len(cases) * len(order)
        done = 0
        for round_no in range(rounds):
            shift = round_no % max(1, len(order))
            turn = order[shift:] + order[:shift]  # rotate who goes first
            for transport, mode in cases:
                for impl in turn:
                    if progress is not None:
                        progress(done, total, f"round {round_no + 1}: {impl} {transport} {mode}")
                    done += 1
                    if f"{impl}/{transport}" in result.errors:
                        continue
                    server = servers[impl]
                    depth = 1 if mode == "seq" else inflight
                    before = server.cpu_ns()
                    try:
                        got = _client(impl, transport, server.where[transport], depth, seconds,
                                      warmup, size)
                    except BenchError as exc:
                        result.errors[f"{impl}/{transport}"] = str(exc)
                        continue
                    after = server.cpu_ns()
                    trips = max(1, int(got["round_trips"]))
                    # the server's CPU covers the warm-up too (and connect, close: small)
                    server_us = None if before is None or after is None else \
                        (after - before) / 1e3 / max(1, int(got["all_round_trips"]))
                    result.runs.setdefault((impl, transport, mode), []).append(WsRun(
                        trips / got["seconds"], server_us,
                        got["cpu_seconds"] / trips * 1e6))
        if progress is not None:
            progress(total, total, "done")
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return result


# --------------------------------------------------------------------------- tables


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _times(value: float | None, target: float | None = None) -> Text:
    if value is None:
        return Text("-")
    text = f"{value:.2f}x"
    if target is None:
        return Text(text)
    return Text(text, style="green") if round(value, 2) >= target else \
        Text(text, style="bold red")


def ws_table(result: WsBenchResult) -> Table:
    caption = (f"{result.size}-byte binary messages echoed; each implementation's own client "
               "against its own server, uvloop, compression off on all. seq = 1 message in "
               f"flight, pipe = {result.inflight} in flight. Server on CPU {SERVER_CPU}, "
               f"client on CPU {CLIENT_CPU} (taskset). Median of {result.rounds} interleaved "
               f"rounds of {result.seconds:g} s; best = the fastest round, (best) = ratio of "
               "the best rounds; cpu = microseconds of CPU per round trip, server (srv) and "
               "client (cli), median; n/a: see below.")
    table = Table(title="WebSocket echo round trips per second (higher is better)",
                  header_style="bold", caption=caption)
    for name in ("transport", "mode", "impl"):
        table.add_column(name, no_wrap=True)
    for name in ("rt/s", "best", "vs aiohttp", "(best)", "vs picows", "(best)", "cpu srv",
                 "cpu cli"):
        table.add_column(name, justify="right", no_wrap=True)
    for transport in result.transports:
        for mode in result.modes:
            for n, impl in enumerate(result.impls):
                server, client = result.cpu(impl, transport, mode)
                target = 1.0 if impl == "trunkline" else None
                error = result.errors.get(f"{impl}/{transport}") or result.errors.get(impl)
                last = n == len(result.impls) - 1
                if error is not None and (impl, transport, mode) not in result.runs:
                    table.add_row(transport if n == 0 else "", mode if n == 0 else "", impl,
                                  *[Text("n/a", style="dim")] * 8, end_section=last)
                    continue
                table.add_row(
                    transport if n == 0 else "", mode if n == 0 else "",
                    Text(impl, style="bold") if impl == "trunkline" else impl,
                    _rate(result.median(impl, transport, mode)),
                    _rate(result.best(impl, transport, mode)),
                    _times(result.ratio(impl, transport, mode, BASELINE), target),
                    _times(result.ratio(impl, transport, mode, BASELINE, best=True), target),
                    _times(result.ratio(impl, transport, mode, GOAL)),
                    _times(result.ratio(impl, transport, mode, GOAL, best=True)),
                    "-" if server is None else f"{server:.1f}",
                    "-" if client is None else f"{client:.1f}",
                    end_section=last)
    return table


__all__ = ["BASELINE", "GOAL", "IMPLS", "MODES", "TRANSPORTS", "WsBenchResult", "WsRun",
           "run_ws_bench", "ws_table"]
