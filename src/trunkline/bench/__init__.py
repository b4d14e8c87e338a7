"""Benchmark workloads shared by ``trunkline bench`` and the scripts in ``benchmarks/``.

Rules:
- Every figure is a ratio measured side by side in one run: trunkline against a raw baseline
  (plain asyncio Protocols on uvloop, socat) or a peer (uvicorn, granian, websockets, aiohttp,
  picows) over the same socket kind, pinned the same way, in interleaved rounds.
- Each end runs in its own process, started with ``taskset`` so both ends sit on known CPUs;
  on a 2-vCPU VM a wake-up on the other CPU costs ~20 us, so latency is reported both
  same-CPU and cross-CPU.
- Workloads return values (dataclasses); printing belongs to ``cli/`` and ``benchmarks/``.
  Each result turns into a rich table and a ``plot.Chart`` (``*_report.py``, ``charts.py``);
  ``plot.py`` is the only module that imports matplotlib, and only when drawing.
  ``worker`` is the one module that prints: it is the entry point of the benchmark processes
  and talks to its parent through its stdout.
"""

from __future__ import annotations

from .pingpong import KINDS, PLACEMENTS, PingPongResult, run_pingpong
from .relay_bulk import RelayResult, run_relay_bulk
from .stats import Latency

__all__ = ["KINDS", "PLACEMENTS", "Latency", "PingPongResult", "RelayResult", "run_pingpong",
           "run_relay_bulk"]
