"""Every socket kind on this machine: 64-byte round trip and bulk throughput of TCP loopback,
a Unix socket path, an abstract name, a FIFO pair, UDP and a Unix datagram socket, trunkline
against the raw-uvloop baseline.

Runs the same workload as ``trunkline bench transports`` (``trunkline.bench.transports``):

    python benchmarks/transports.py
    python benchmarks/transports.py --kinds unix,fifo --bulk-size 1G --plot transports.png
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout

from trunkline.cli.bench_net import transports_command  # noqa: E402

if __name__ == "__main__":
    transports_command(prog_name="benchmarks/transports.py")
