"""Datagram health as iperf3 -u reports it (sent, lost, reordered, duplicated, RFC 3550
jitter) at a chosen rate and size, over UDP, a Unix datagram socket, and UDP between two
network namespaces (root): raw asyncio vs trunkline at both ends.

Runs the same workload as ``trunkline bench udp`` (``trunkline.bench.udp``):

    python benchmarks/udp.py --rate 100M --size 1460
    python benchmarks/udp.py --rate 20000pps --size 64 --kinds udp,unixgram
    sudo python benchmarks/udp.py --kinds netns --dont-fragment --size 1472
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout

from trunkline.cli.bench_net import udp_command  # noqa: E402

if __name__ == "__main__":
    udp_command(prog_name="benchmarks/udp.py")
