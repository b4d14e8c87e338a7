"""Benchmark processes: ``python -m trunkline.bench.worker ...`` pinned with ``taskset``.

A server worker prints one readiness line (``READY <url>``) on stdout and runs until its stdin
closes; a one-shot worker prints one JSON line with its result and exits.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import TrunklineError

READY = "READY"


class BenchError(TrunklineError):
    """A benchmark run that could not be carried out (a worker failed or timed out)."""


def pinnable(cpu: int) -> bool:
    return shutil.which("taskset") is not None and cpu in os.sched_getaffinity(0)


def worker_command(args: Sequence[str], cpu: int | None, prefix: Sequence[str] = ()
                   ) -> list[str]:
    """``prefix`` runs the worker through another command first (``ip netns exec NS``)."""
    cmd = [sys.executable, "-m", "trunkline.bench.worker", *args]
    if cpu is not None and pinnable(cpu):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    return [*prefix, *cmd]


def worker_env() -> dict[str, str]:
    """Our environment, with this package importable even when it is not installed."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def _tail(text: str | bytes | None, lines: int = 6) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " | ".join((text or "").strip().splitlines()[-lines:])


class Worker:
    """A long-running worker (a server): started on ``cpu``, stopped by closing its stdin."""

    def __init__(self, args: Sequence[str], cpu: int | None = None,
                 pass_fds: Sequence[int] = (), ready_timeout: float = 20.0,
                 prefix: Sequence[str] = ()) -> None:
        self.args = list(args)
        self.ready_timeout = ready_timeout
        self.proc = subprocess.Popen(worker_command(args, cpu, prefix), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     pass_fds=tuple(pass_fds), env=worker_env())

    def wait_ready(self) -> str:
        """Wait for ``READY <url>``; returns the url."""
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(self.ready_timeout):
                raise BenchError(f"worker {self.args[0]} not ready after "
                                 f"{self.ready_timeout} s")
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith(READY):
            self.stop()
            raise BenchError(f"worker {' '.join(self.args)} failed: "
                             f"{_tail(self.stderr()) or line or 'no output'}")
        return line[len(READY):].strip()

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def run_worker(args: Sequence[str], cpu: int | None = None, timeout: float = 120.0,
               prefix: Sequence[str] = (), *, allow_failure: bool = False) -> dict[str, Any]:
    """Run a one-shot worker to completion; returns the JSON object it printed last.
    ``allow_failure``: a worker that exits non-zero after printing its JSON (an error it
    reports itself) returns that JSON instead of raising."""
    try:
        done = subprocess.run(worker_command(args, cpu, prefix), capture_output=True,
                              timeout=timeout,
                              env=worker_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"worker {args[0]} took longer than {timeout:.0f} s: "
                         f"{_tail(exc.stderr)}") from exc
    lines = done.stdout.decode().strip().splitlines()
    if not lines or (done.returncode != 0 and not allow_failure):
        raise BenchError(f"worker {args[0]} failed (exit {done.returncode}): "
                         f"{_tail(done.stderr) or 'no output'}")
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except ValueError:
        raise BenchError(f"worker {args[0]} failed (exit {done.returncode}): "
                         f"{_tail(done.stderr) or lines[-1]}") from None
    return result


def read_json_line(worker: Worker, timeout: float) -> dict[str, Any]:
    """The next line a running worker prints, as JSON (its result)."""
    assert worker.proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(worker.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise BenchError(f"worker {worker.args[0]} did not report within {timeout:.0f} s")
    line = worker.proc.stdout.readline().decode()
    if not line:
        worker.proc.wait(5)
        raise BenchError(f"worker {worker.args[0]} failed: {_tail(worker.stderr()) or 'no output'}")
    result: dict[str, Any] = json.loads(line)
    return result
