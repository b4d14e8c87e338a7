"""The bench smoke tests pin their processes to CPU 0 and 1 (``taskset``). Under pytest-xdist
(the README's test command) each worker takes one lock, shared by the run's workers, around
every bench test, so no two benches ever run at once on the same pinned CPUs. (xdist's
``xdist_group`` would say the same, but its ``loadgroup`` mode does not group on pytest 9.)"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def one_bench_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield  # one process runs every test in turn
        return
    # a worker's base temp dir is <the run's>/popen-gwN: the parent is the run's own
    path = tmp_path_factory.getbasetemp().parent / "cpu-pinned.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the fd closes, even if we die
        yield
    finally:
        os.close(fd)
