"""Relay bulk throughput: ``trunkline relay`` against ``socat`` on the same path.

    sender (CPU 1) --TCP--> relay (CPU 0) --Unix socket--> sink (CPU 1)

The relay under test runs as its own process (the real CLI, ``trunkline relay
tcp://127.0.0.1:0 unix://…``, or ``socat TCP-LISTEN:… UNIX-CONNECT:…``) pinned to CPU 0; the
sender and sink (``bulk.py``: blocking sockets, 1 MiB per call) are pinned to CPU 1, so the
relay is the bottleneck. Throughput is bytes / (sink saw the last byte - sender started).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .process import BenchError, Worker, pinnable, read_json_line, run_worker, worker_env

RELAYS = ("socat", "trunkline")
TARGET_RATIO = 1.5
RELAY_CPU, ENDS_CPU = 0, 1


@dataclass(frozen=True)
class RelayRun:
    relay: str
    bytes: int
    seconds: float

    @property
    def mib_per_s(self) -> float:
        return self.bytes / (1024 * 1024) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class RelayResult:
    size: int
    runs: dict[str, list[RelayRun]]
    errors: dict[str, str]

    def median(self, relay: str) -> RelayRun | None:
        """The median run of ``relay`` (by throughput)."""
        runs = sorted(self.runs.get(relay, []), key=lambda r: r.mib_per_s)
        return runs[(len(runs) - 1) // 2] if runs else None

    @property
    def ratio(self) -> float | None:
        """trunkline MiB/s / socat MiB/s: the figure the target (>= 1.5) is about."""
        ours, theirs = self.median("trunkline"), self.median("socat")
        if ours is None or theirs is None or theirs.mib_per_s <= 0:
            return None
        return ours.mib_per_s / theirs.mib_per_s

    @property
    def meets_target(self) -> bool | None:
        ratio = self.ratio  # judged at the precision shown (2 decimals)
        return None if ratio is None else round(ratio, 2) >= TARGET_RATIO


Progress = Callable[[int, int, str], None]


def parse_size(text: str) -> int:
    """``1G``, ``512M``, ``64K``, ``1GiB`` or plain bytes."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1] if value and value[-1] in units else ""
    number = value[: len(value) - len(unit)]
    try:
        size = int(float(number) * units[unit])
    except ValueError:
        raise BenchError(f"bad size {text!r}: use bytes or a K/M/G suffix, e.g. 1G") from None
    if size <= 0:
        raise BenchError(f"bad size {text!r}: must be more than 0")
    return size


def run_relay_bulk(size: int = 1 << 30, relays: Sequence[str] = RELAYS, repeat: int = 1,
                   progress: Progress | None = None) -> RelayResult:
    """Push ``size`` bytes through each relay, alternating them ``repeat`` times."""
    for relay in relays:
        if relay not in RELAYS:
            raise BenchError(f"unknown relay {relay!r}; choose from {', '.join(RELAYS)}")
    if "socat" in relays and shutil.which("socat") is None:
        raise BenchError("socat is not installed (Debian: apt-get install socat)")
    runs: dict[str, list[RelayRun]] = {r: [] for r in relays}
    errors: dict[str, str] = {}
    total, done = len(relays) * repeat, 0
    workdir = tempfile.mkdtemp(prefix="tlb-", dir="/tmp")
    try:
        for i in range(repeat):
            for relay in relays:
                if progress is not None:
                    progress(done, total, f"{relay} relaying {size >> 20} MiB")
                try:
                    runs[relay].append(_run_once(relay, size, os.path.join(workdir,
                                                                           f"sink{i}.sock")))
                except BenchError as exc:
                    errors[relay] = str(exc)
                done += 1
        if progress is not None:
            progress(done, total, "done")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return RelayResult(size, runs, errors)


def _run_once(relay: str, size: int, sink_path: str) -> RelayRun:
    timeout = 60 + size / (50 << 20)  # generous: 50 MiB/s would still finish
    with Worker(["sink", "--unix", sink_path, "--size", str(size)], cpu=ENDS_CPU) as sink:
        sink.wait_ready()
        proc, port = _start_relay(relay, sink_path)
        try:
            sent = run_worker(["send", "--tcp", f"127.0.0.1:{port}", "--size", str(size)],
                              cpu=ENDS_CPU, timeout=timeout)
            got = read_json_line(sink, timeout)
        finally:
            _stop(proc)
    if got["bytes"] != size:
        raise BenchError(f"{relay}: the sink got {got['bytes']} of {size} bytes")
    return RelayRun(relay, size, (got["t_full_ns"] - sent["t_start_ns"]) / 1e9)


def _pin(cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(RELAY_CPU), *cmd] if pinnable(RELAY_CPU) else cmd


def _start_relay(relay: str, sink_path: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start the relay; returns it and its TCP port once it says it is listening."""
    if relay == "socat":
        port = _free_port()
        cmd = ["socat", "-d", "-d", f"TCP-LISTEN:{port},reuseaddr,bind=127.0.0.1",
               f"UNIX-CONNECT:{sink_path}"]
    else:
        port = 0
        cmd = [sys.executable, "-m", "trunkline", "relay", "--quiet", "tcp://127.0.0.1:0",
               f"unix://{sink_path}"]
    proc = subprocess.Popen(_pin(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=worker_env())
    lines: list[str] = []
    listening = threading.Event()

    def drain() -> None:  # reads every line, so the relay never blocks on a full pipe
        assert proc.stderr is not None
        for raw_line in proc.stderr:
            line = raw_line.decode(errors="replace").strip()
            lines.append(line)
            if "listening on" in line:
                listening.set()
        listening.set()  # EOF: the relay exited

    threading.Thread(target=drain, daemon=True).start()
    if not listening.wait(20) or not any("listening on" in line for line in lines):
        _stop(proc)
        raise BenchError(f"{relay} did not start listening: {' | '.join(lines[-5:])}")
    if relay == "trunkline":
        # "listening on tcp://127.0.0.1:PORT (relaying to ...)"
        line = next(line for line in lines if "listening on" in line)
        url = line.split("listening on", 1)[1].split()[0]
        port = int(url.rsplit(":", 1)[1])
    return proc, port


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
