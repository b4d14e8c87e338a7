"""Real topologies for the ``trunkline map`` tests: long-running peers in subprocesses whose
connections are proven up by an echo round trip (the reply came back, so both ends are open),
never by sleeping. Every wait has a deadline; every process is killed at the end."""

from __future__ import annotations

import contextlib
import os
import re
import select
import subprocess
import time
import uuid
from collections.abc import Sequence

from tests.support.cli_helpers import TRUNKLINE

DEADLINE = 20.0


def unique(prefix: str = "tl-sockmap") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Peer:
    """A process whose stdin we write and whose stdout we read (a client, an echo server).
    ``user``: run it as this user (setpriv), for the tests of what others can see."""

    def __init__(self, argv: Sequence[str], *, user: str | None = None,
                 stdout: int | None = subprocess.PIPE) -> None:
        if user is not None:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user_group(user)}",
                    "--clear-groups", *argv]
        self.argv = list(argv)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=stdout,
                                     stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        self._err = b""

    def roundtrip(self, data: bytes = b"ping\n", timeout: float = DEADLINE) -> bytes:
        """Send ``data`` and read until it came back: the peer is connected end to end."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        return self.read_until(data, timeout)

    def read_until(self, wanted: bytes, timeout: float = DEADLINE) -> bytes:
        assert self.proc.stdout is not None
        got = b""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while wanted not in got:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(left, 0))
            if not readable:
                raise AssertionError(f"{self.argv}: no {wanted!r} within {timeout} s "
                                     f"(got {got!r}); stderr: {self.stderr()}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"{self.argv} closed its output after {got!r}; "
                                     f"exit {self.proc.wait()}; stderr: {self.stderr()}")
            got += chunk
        return got

    def wait_stderr(self, pattern: str, timeout: float = DEADLINE) -> re.Match[bytes]:
        """The first match of ``pattern`` in what the process writes on stderr."""
        assert self.proc.stderr is not None
        regex = re.compile(pattern.encode())
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self._err)
            if match:
                return match
            readable, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if not readable:
                raise AssertionError(f"{self.argv}: no {pattern!r} on stderr within "
                                     f"{timeout} s; stderr: {self._err!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"{self.argv} exited ({self.proc.wait()}) before "
                                     f"{pattern!r}; stderr: {self._err!r}")
            self._err += chunk

    def stderr(self) -> str:
        return self._err.decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=DEADLINE)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()


def connect_client(url: str, *, user: str | None = None) -> Peer:
    """``trunkline connect URL``, its connection proven by one echo round trip."""
    peer = Peer([*TRUNKLINE, "connect", url, "--wait", "30"], user=user)
    try:
        peer.roundtrip()
    except BaseException:
        peer.stop()
        raise
    return peer


def socat_server(address: str, *, user: str | None = None, prefix: Sequence[str] = ()
                 ) -> tuple[Peer, str]:
    """``socat -d -d ADDRESS PIPE`` (an echo server); returns it and what it said it listens
    on (``127.0.0.1:PORT`` for TCP, the name for Unix sockets)."""
    peer = Peer([*prefix, "socat", "-d", "-d", address, "PIPE"], user=user,
                stdout=subprocess.DEVNULL)
    try:
        match = peer.wait_stderr(r"listening on (?:AF=\d+ )?\"?([^\s\"]+)")
    except BaseException:
        peer.stop()
        raise
    return peer, match.group(1).decode()


def socat_client(address: str, *, user: str | None = None, prefix: Sequence[str] = ()
                 ) -> Peer:
    """``socat - ADDRESS``, its connection proven by one echo round trip."""
    peer = Peer([*prefix, "socat", "-", address], user=user)
    try:
        peer.roundtrip()
    except BaseException:
        peer.stop()
        raise
    return peer


def user_group(user: str) -> str:
    import grp
    import pwd

    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def stop_all(peers: Sequence[Peer]) -> None:
    for peer in reversed(peers):
        peer.stop()
