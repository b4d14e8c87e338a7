"""Fast bulk endpoints for the relay benchmark: plain blocking sockets, 1 MiB per call, so
the relay between them is the bottleneck."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

CHUNK = 1024 * 1024


def sink(path: str, size: int, on_ready: Callable[[str], None],
         on_done: Callable[[dict[str, Any]], None]) -> None:
    """Accept one connection on the Unix socket ``path``, read until EOF, report the times of
    the first byte and of byte ``size``."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(1)
        on_ready(f"unix://{path}")
        conn, _ = listener.accept()
    finally:
        listener.close()
        os.unlink(path)
    buffer = memoryview(bytearray(CHUNK))
    total = 0
    t_first = t_full = 0
    with conn:
        while n := conn.recv_into(buffer):
            if total == 0:
                t_first = time.monotonic_ns()
            total += n
            if t_full == 0 and total >= size:
                t_full = time.monotonic_ns()
    on_done({"bytes": total, "t_first_ns": t_first, "t_full_ns": t_full or time.monotonic_ns()})


def send(host: str, port: int, size: int) -> dict[str, Any]:
    """Connect, send ``size`` bytes in 1 MiB calls, half-close, wait for the peer's close."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    payload = memoryview(b"\xa5" * CHUNK)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.connect((host, port))
        t_start = time.monotonic_ns()
        left = size
        while left > 0:
            left -= sock.send(payload[:min(left, CHUNK)])
        t_sent = time.monotonic_ns()
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    return {"bytes": size, "t_start_ns": t_start, "t_sent_ns": t_sent}
