"""Claiming a Unix socket path when servers start at the same moment (issue 10, point 2).

A server checks the path (a live socket is in use, a stale one is removed), binds, then
listens. Without turns, a second server could find the first one's socket bound but not yet
listening, take it for stale, unlink it and bind its own: both then said "listening". The
servers take turns with a lock on the directory, so exactly one wins.

To make "the same moment" real, each ``trunkline serve`` is started behind a gate: it imports
everything, says it is ready, and blocks reading a pipe; closing the pipe's write end wakes
both at once (a race the old code lost about once in ten).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli_helpers import Service

PAIRS = 60
LANES = 4  # pairs racing at once, each pair for its own path in one shared directory

GATED_MAIN = """\
import os, sys
from trunkline.cli import main, serve  # serve registers itself on the command group
gate = int(sys.argv[1])
sys.stdout.write("ready\\n")
sys.stdout.flush()
os.read(gate, 1)  # returns b"" when the test closes the write end: every process at once
main.cli(sys.argv[2:], prog_name="trunkline")
"""


class Contender:
    """One gated ``trunkline serve``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stderr = b""

    async def outcome(self) -> str:
        """``listening`` once it says so, else ``exit N`` when it ends."""
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr += line
            if line.startswith(b"listening on "):
                return "listening"
        return f"exit {await self.proc.wait()}"


async def _start_pair(url: str) -> list[Contender]:
    gate_r, gate_w = os.pipe()
    procs: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(2):
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-c", GATED_MAIN, str(gate_r), "serve", "echo", "--on", url,
                pass_fds=(gate_r,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE))
        for proc in procs:
            assert proc.stdout is not None
            assert await proc.stdout.readline() == b"ready\n"
    except BaseException:  # failed or cancelled (another lane failed): leave nothing running
        for proc in procs:
            proc.kill()
            await proc.wait()
        raise
    finally:
        os.close(gate_r)
        os.close(gate_w)  # both wake now
    return [Contender(proc) for proc in procs]


def _server_pid(path: str) -> int:
    """Connect to ``path``, echo a line, and say which process answered (SO_PEERCRED)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET,
                                                        socket.SO_PEERCRED, 12))
        sock.sendall(b"who\n")
        assert sock.recv(16) == b"who\n"
    return int(pid)


async def _race(path: str, pairs: int) -> None:
    for pair in range(pairs):
        contenders = await _start_pair(f"unix://{path}")
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(c.outcome() for c in contenders)), 60)
            assert sorted(outcomes) == ["exit 1", "listening"], (
                f"{path} pair {pair}: {outcomes}; stderr: {[c.stderr for c in contenders]}")
            winner, loser = (contenders if outcomes[0] == "listening"
                             else contenders[::-1])
            assert b"in use" in loser.stderr, loser.stderr
            pid = await asyncio.to_thread(_server_pid, path)
            assert pid == winner.proc.pid  # the winner really owns the path
            winner.proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(winner.proc.wait(), 30) == 0
            assert not os.path.exists(path)
        finally:
            for c in contenders:
                if c.proc.returncode is None:
                    c.proc.kill()
                    await c.proc.wait()


@pytest.mark.timeout(400)
async def test_simultaneous_starts_on_one_path_have_exactly_one_winner(short_tmp: Path
                                                                       ) -> None:
    async with asyncio.TaskGroup() as lanes:  # a failure in one lane stops the others
        for lane in range(LANES):
            lanes.create_task(_race(str(short_tmp / f"race{lane}.sock"), PAIRS // LANES))
    assert os.listdir(short_tmp) == []  # no socket and no lock file left behind


def test_a_lock_holder_that_died_does_not_block_a_start(short_tmp: Path) -> None:
    # The lock is a flock on the directory: the kernel drops it with its holder, so a server
    # killed while claiming leaves nothing that could block the next start.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY);"
         "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
         str(short_tmp)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        holder.kill()
        holder.wait(10)
        fd = os.open(short_tmp, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again at once
        finally:
            os.close(fd)
        with Service(["serve", "echo", "--on", f"unix://{short_tmp}/after.sock"]) as server:
            server.wait_ready()
            assert _server_pid(f"{short_tmp}/after.sock") == server.proc.pid
            assert server.stop() == 0
    finally:
        holder.kill()
        holder.wait(10)
    assert os.listdir(short_tmp) == []


def test_a_live_lock_holder_delays_a_start_but_never_blocks_it(short_tmp: Path) -> None:
    # Anyone who can open the directory can flock it; a server waits for its turn a little,
    # then claims the path without the lock (the in-use and stale checks still apply).
    fd = os.open(short_tmp, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with Service(["serve", "echo", "--on", f"unix://{short_tmp}/busy.sock"]) as server:
            server.wait_ready()
            assert _server_pid(f"{short_tmp}/busy.sock") == server.proc.pid
            assert server.stop() == 0
    finally:
        os.close(fd)
