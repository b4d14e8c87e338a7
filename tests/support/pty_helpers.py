"""Driving an interactive command in a real pseudo-terminal (the pty module), as a user would.

The command gets the terminal as stdin, stdout, stderr and controlling terminal (its own
session), so the line discipline does what it does for a person: lines go through on Enter,
Ctrl-D at the start of a line ends the input, Ctrl-C sends SIGINT. What the command writes is
collected by a thread; ``expect`` waits for a pattern with a deadline, never a sleep.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import termios
import threading
import time
from collections.abc import Sequence

DEADLINE = 15.0
CTRL_C = b"\x03"
CTRL_D = b"\x04"


def _take_terminal() -> None:  # runs in the child, after setsid (start_new_session)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A command running on the slave side of a fresh pty; we hold the master."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None,
                 columns: int = 100) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    (24).to_bytes(2, "little") + columns.to_bytes(2, "little") + bytes(4))
        self.master = master
        self.proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, preexec_fn=_take_terminal,
                                     env=env, close_fds=True)
        os.close(slave)
        self.output = bytearray()
        self._seen = 0
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every slave descriptor is closed (the command ended)
                data = b""
            with self._changed:
                if not data:
                    self._closed = True
                    self._changed.notify_all()
                    return
                self.output += data
                self._changed.notify_all()

    _closed = False

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes | str, timeout: float = DEADLINE) -> re.Match[bytes]:
        """The next match of ``pattern`` in what the command wrote since the last match."""
        regex = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = regex.search(self.output, self._seen)
                if match:
                    self._seen = match.end()
                    return match
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise AssertionError(f"no {pattern!r} within {timeout} s (exited: "
                                         f"{self.proc.poll()}); terminal shows "
                                         f"{bytes(self.output)!r}")
                self._changed.wait(left)

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout} s; terminal shows "
                                 f"{bytes(self.output)!r}") from None
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.kill()
        self._reader.join(DEADLINE)
        os.close(self.master)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
