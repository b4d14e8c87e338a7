"""Bulk throughput of ``trunkline relay`` (TCP in, Unix socket out) against socat.

Runs the same workload as ``trunkline bench relay`` (the code lives in
``trunkline.bench.relay_bulk``), with the same options:

    python benchmarks/relay_bulk.py                     # 1 GiB through each relay
    python benchmarks/relay_bulk.py --size 256M --repeat 3
    python benchmarks/relay_bulk.py --json

The relay under test (the real CLI as a subprocess, or ``socat TCP-LISTEN:…
UNIX-CONNECT:…``) is pinned to CPU 0; a sender writing 1 MiB per call into its TCP side and a
sink counting bytes on its Unix-socket side are separate processes pinned to CPU 1. See
README.md here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout

from trunkline.cli.bench import relay_command  # noqa: E402

if __name__ == "__main__":
    relay_command(prog_name="benchmarks/relay_bulk.py")
