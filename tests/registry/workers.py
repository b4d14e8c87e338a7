"""``registry_worker.py`` (or another ``program``, e.g. ``trunkline``) as a subprocess: its
stdout lines read by a thread into a queue, waited on with deadlines (never a sleep)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

WORKER = str(Path(__file__).with_name("registry_worker.py"))
DEADLINE = 30.0


class Worker:
    def __init__(self, args: Sequence[str], *, prefix: Sequence[str] = (),
                 env: dict[str, str] | None = None, user: str | None = None,
                 program: Sequence[str] = (sys.executable, WORKER)) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen([*prefix, *program, *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
                                     user=user)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.out: list[str] = []
        self.err: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.out, self.lines),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err, None),
                         daemon=True).start()

    @staticmethod
    def _pump(pipe: object, into: list[str], lines: queue.Queue[str | None] | None) -> None:
        for raw in pipe:  # type: ignore[attr-defined]
            line = raw.decode("utf-8", "replace").rstrip("\n")
            into.append(line)
            if lines is not None:
                lines.put(line)
        if lines is not None:
            lines.put(None)

    def line(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        regex = re.compile(pattern)
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"{self.args}: no line matching {pattern!r} in {timeout} s;"
                                     f" stdout {self.out[-5:]}, stderr {self.err[-10:]}") from None
            if line is None:
                raise AssertionError(f"{self.args} ended (status {self.proc.wait()}) before a "
                                     f"line matching {pattern!r}; stdout {self.out[-5:]}, "
                                     f"stderr {self.err[-10:]}")
            match = regex.search(line)
            if match:
                return match

    def finish(self, timeout: float = DEADLINE) -> int:
        """Close stdin (the worker's signal to stop) and wait for its exit status."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        return self.proc.wait(timeout=timeout)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=DEADLINE)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
