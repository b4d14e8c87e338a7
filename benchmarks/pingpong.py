"""64-byte ping-pong round trips over every socket kind: trunkline against raw asyncio.

Runs the same workload as ``trunkline bench pingpong`` (the code lives in
``trunkline.bench.pingpong``), with the same options:

    python benchmarks/pingpong.py                           # every kind, same and cross CPU
    python benchmarks/pingpong.py --kinds unix,fifo --placement same --rounds 5000
    python benchmarks/pingpong.py --json > pingpong.json

Per kind and CPU placement, a raw echo server (asyncio.Protocol on uvloop) and a trunkline
echo server (trunkline.serve) run as separate processes pinned with taskset; one client
process, pinned too, alternates between them in blocks of round trips. See README.md here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout

from trunkline.cli.bench import pingpong_command  # noqa: E402

if __name__ == "__main__":
    pingpong_command(prog_name="benchmarks/pingpong.py")
