"""``trunkline.run_workers``: the library's worker processes, with a raw stream handler
(``trunkline.serve``) in real forked workers, and the restart policy's arithmetic.

The script's handler answers ``pid`` with its process id; ``hold`` first blocks the worker
in a read of a FIFO (its loop stops, so it accepts nothing): the next connection must go to
another worker, which makes "both answer" certain rather than likely.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli_helpers import Service
from trunkline.errors import UnsupportedError
from trunkline.workers import RestartPolicy, run_workers, worker_count

SCRIPT = '''
import os, sys
import trunkline

GATE = os.environ["WK_GATE"]


async def handler(stream):
    line = await stream.readuntil(b"\\n")
    if line == b"hold\\n":
        os.write(2, f"held by {os.getpid()}\\n".encode())  # one write: lines never mix
        fd = os.open(GATE, os.O_RDWR)
        os.read(fd, 1)  # blocks this worker's loop
        os.close(fd)
    await stream.send(f"{os.getpid()}\\n".encode())
    await stream.aclose()


def announce(urls):
    for url in urls:
        print(f"listening on {url}", file=sys.stderr, flush=True)


async def start(addresses):
    return await trunkline.serve(handler, *addresses)


sys.exit(trunkline.run_workers(start, sys.argv[1:], workers=2, on_ready=announce))
'''


@pytest.fixture
def script(short_tmp: Path) -> Iterator[tuple[Path, dict[str, str], int]]:
    path = short_tmp / "workers_script.py"
    path.write_text(SCRIPT)
    gate = short_tmp / "gate"
    os.mkfifo(gate)
    gate_fd = os.open(gate, os.O_RDWR)  # bytes written before a worker opens it stay there
    yield path, {"WK_GATE": str(gate)}, gate_fd
    os.close(gate_fd)


def _ask(url: str, line: bytes) -> int:
    if url.startswith("tcp://"):
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=20)
    else:
        name = url.removeprefix("unix:")
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(20)
        sock.connect("\0" + name[1:] if name.startswith("@") else name.removeprefix("//"))
    with sock:
        sock.sendall(line)
        data = b""
        while chunk := sock.recv(100):
            data += chunk
    return int(data)


def test_run_workers_serves_a_stream_handler_from_two_processes(
        script: tuple[Path, dict[str, str], int], short_tmp: Path) -> None:
    path, env, gate_fd = script
    service = Service([str(path), "tcp://127.0.0.1:0", f"unix://{short_tmp / 's.sock'}"],
                      command=[sys.executable], env=env)
    with service:
        tcp_url, unix_url = service.wait_ready(2)
        held: list[int] = []
        holder = threading.Thread(target=lambda: held.append(_ask(tcp_url, b"hold\n")))
        holder.start()
        blocked = int(service.wait_for_line(r"held by (\d+)").group(1))
        other = _ask(unix_url, b"pid\n")
        assert other != blocked and _ask(tcp_url, b"pid\n") == other
        os.write(gate_fd, b"x")
        holder.join(20)
        assert held == [blocked]
        assert service.stop(signal.SIGTERM) == 0
    assert not (short_tmp / "s.sock").exists()


def test_restart_policy_backs_off_only_when_a_worker_keeps_dying_young() -> None:
    policy = RestartPolicy(min_uptime=1.0, first_delay=0.5, max_delay=4.0)
    assert policy.delay(uptime=30.0) == 0.0  # lived: replaced at once
    assert policy.delay(uptime=0.1) == 0.0  # once young is not a loop
    assert [policy.delay(uptime=0.1) for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.delay(uptime=5.0) == 0.0  # lived again: the count starts over
    assert policy.failures == 0
    assert policy.delay(uptime=0.1) == 0.0


def test_worker_count() -> None:
    assert worker_count(3) == 3
    assert worker_count(0) == len(os.sched_getaffinity(0))
    with pytest.raises(UnsupportedError, match="at least 1, or 0 for one per core"):
        worker_count(-1)


async def test_run_workers_refuses_to_fork_inside_an_event_loop() -> None:
    async def start(addresses: list[object]) -> None:
        raise AssertionError("never started")

    with pytest.raises(UnsupportedError, match="outside any event loop"):
        run_workers(start, ["tcp://127.0.0.1:0"], workers=2)  # type: ignore[arg-type]
