"""WebSocket echo round trips per second: trunkline against websockets, aiohttp and picows.

Runs the same workload as ``trunkline bench ws`` (the code lives in
``trunkline.bench.websocket`` and ``trunkline.bench.ws_peers``), with the same options:

    python benchmarks/websocket.py                          # 4 impls x tcp,unix x seq,pipe
    python benchmarks/websocket.py --impls trunkline,aiohttp --transports tcp --rounds 5
    python benchmarks/websocket.py --json > websocket.json

Each implementation's own client against its own echo server, 32-byte binary messages,
uvloop everywhere, compression off on all; server pinned to CPU 0 and client to CPU 1
(taskset); sequential (1 in flight) and pipelined (16 in flight); interleaved rounds.
picows is optional (pip install picows); without it its rows say n/a. See README.md here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout

from trunkline.cli.bench import ws_command  # noqa: E402

if __name__ == "__main__":
    ws_command(prog_name="benchmarks/websocket.py")
