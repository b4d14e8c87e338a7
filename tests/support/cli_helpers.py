"""Running ``trunkline`` commands as subprocesses, for the CLI tests.

Readiness comes from the command's own "listening on URL" lines on stderr (read by a thread
into a queue), never from sleeps; every wait has a deadline.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence

TRUNKLINE = [sys.executable, "-m", "trunkline"]
READY = re.compile(r"^listening on (\S+)")
DEADLINE = 20.0


def run(args: Sequence[str], *, input: bytes | None = None, timeout: float = DEADLINE,
        stdin: int | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``trunkline ARGS`` to completion."""
    return subprocess.run([*TRUNKLINE, *args], input=input, stdin=stdin,
                          capture_output=True, timeout=timeout, check=False)


class Service:
    """A long-running ``trunkline`` command (``serve``, ``relay``) in a subprocess; or
    another ``command`` (a script) that prints the same readiness lines."""

    def __init__(self, args: Sequence[str], *, pass_fds: Sequence[int] = (),
                 command: Sequence[str] = TRUNKLINE, env: Mapping[str, str] | None = None
                 ) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen([*command, *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     pass_fds=pass_fds,
                                     env=None if env is None else {**os.environ, **env})
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_ready(self, count: int = 1, timeout: float = DEADLINE) -> list[str]:
        """The URLs of the first ``count`` readiness lines."""
        urls: list[str] = []
        while len(urls) < count:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.kill()
                raise AssertionError(f"{self.args}: not ready within {timeout} s; stderr: "
                                     f"{self.stderr}") from None
            if line is None:
                raise AssertionError(f"{self.args} exited with {self.proc.wait()} before "
                                     f"being ready; stderr: {self.stderr}")
            match = READY.match(line)
            if match:
                urls.append(match.group(1))
        return urls

    def wait_for_line(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        """The first (further) stderr line matching ``pattern``."""
        regex = re.compile(pattern)
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s; "
                                     f"stderr: {self.stderr}") from None
            if line is None:
                raise AssertionError(f"exited before a line matching {pattern!r}; stderr: "
                                     f"{self.stderr}")
            match = regex.search(line)
            if match:
                return match

    def stop(self, sig: int = signal.SIGTERM, timeout: float = DEADLINE) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

