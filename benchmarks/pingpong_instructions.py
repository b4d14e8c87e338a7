"""Instructions per 64-byte round trip, trunkline vs the raw baseline, under callgrind.

The ping-pong benchmark's wall-clock ratios swing with the machine's load; instruction counts
do not. This runs the ping-pong workload in one process (server and client on one uvloop
loop, over a real socket of each kind: ``bench/pingpong.py``'s trunkline server and client,
``bench/raw.py``'s baseline) under valgrind's callgrind, twice per case (``--n1`` and
``--n2`` round trips after ``--warmup``), and reports
``(I(n2) - I(n1)) / (n2 - n1)`` instructions per round trip (client and server together)
for each side, and their ratio. ``PYTHONHASHSEED=0`` keeps the runs deterministic.

    python benchmarks/pingpong_instructions.py                      # every kind, ~2 minutes
    python benchmarks/pingpong_instructions.py --kinds unix,fifo --n1 1000 --n2 3000
    python benchmarks/pingpong_instructions.py --profile tcp4       # keep the callgrind files
    python benchmarks/pingpong_instructions.py --json

With ``--profile KIND`` the callgrind output of the trunkline ``n2`` run is kept (its path is
printed) for ``callgrind_annotate``. Needs ``valgrind``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

KINDS = ("tcp4", "unix", "abstract", "fifo", "udp", "unixgram")
IMPLS = ("raw", "trunkline")
SIZE = 64


async def _drive(impl: str, kind: str, rounds: int, warmup: int, workdir: str) -> None:
    from trunkline.bench import raw
    from trunkline.bench.pingpong import open_trunkline_pinger, serve_trunkline, server_url_for

    url = server_url_for(kind, workdir, f"{impl}-{os.getpid()}")
    if impl == "raw":
        ready, keep = await raw.serve(url)
        ping = await raw.open_pinger(ready, SIZE, workdir)
    else:
        ready, keep = await serve_trunkline(url)
        ping = await open_trunkline_pinger(ready, SIZE)
    for _ in range(warmup + rounds):
        await ping()
    del keep


def drive(impl: str, kind: str, rounds: int, warmup: int) -> None:
    """The measured process: ``rounds`` round trips after ``warmup``, then exit at once."""
    from trunkline import _loop

    workdir = tempfile.mkdtemp(prefix="tlpi-", dir="/tmp")
    try:
        _loop.run(_drive(impl, kind, rounds, warmup, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)  # no teardown: only the round trips differ between the two runs


def instructions(impl: str, kind: str, rounds: int, warmup: int, keep: str | None = None
                 ) -> int:
    """Instructions of one driver run under callgrind."""
    out = keep or tempfile.mktemp(prefix="tlpi-cg-", dir="/tmp")
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
           sys.executable, os.path.abspath(__file__), "--drive", impl, kind, str(rounds),
           str(warmup)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    try:
        match = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or match is None:
            raise RuntimeError(f"{impl} {kind}: valgrind failed:\n{proc.stderr[-2000:]}")
        return int(match.group(1))
    finally:
        if keep is None:
            with contextlib.suppress(OSError):
                os.unlink(out)


def measure(kinds: list[str], n1: int, n2: int, warmup: int, profile: str | None,
            impls: tuple[str, ...] = IMPLS) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for kind in kinds:
        row: dict[str, Any] = {}
        for impl in impls:
            keep = None
            if profile == kind and impl == "trunkline":
                keep = f"/tmp/tlpi-{kind}-{impl}.cg"
            with ThreadPoolExecutor(2) as pool:  # two valgrinds at once: each uses one CPU
                run1 = pool.submit(instructions, impl, kind, n1, warmup)
                run2 = pool.submit(instructions, impl, kind, n2, warmup, keep)
                i1, i2 = run1.result(), run2.result()
            row[impl] = (i2 - i1) / (n2 - n1)
            if keep is not None:
                print(f"callgrind output kept: {keep}", file=sys.stderr)
        if len(row) == len(IMPLS):
            row["ratio"] = row["trunkline"] / row["raw"]
        results[kind] = row
        print(f"{kind:9} " + "  ".join(f"{k} {v:.3f}" if k == "ratio" else f"{k} {v:.0f}"
                                      for k, v in row.items()), file=sys.stderr, flush=True)
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--drive":
        impl, kind, rounds, warmup = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        drive(impl, kind, rounds, warmup)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--n1", type=int, default=1000)
    parser.add_argument("--n2", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--profile", metavar="KIND", help="keep the trunkline n2 run's file")
    parser.add_argument("--impls", default=",".join(IMPLS),
                        help="raw,trunkline (default) or one of them")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed")
    kinds = [k for k in args.kinds.split(",") if k]
    for kind in kinds:
        if kind not in KINDS:
            sys.exit(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    impls = tuple(i for i in args.impls.split(",") if i)
    if not impls or any(i not in IMPLS for i in impls):
        sys.exit(f"--impls: choose from {', '.join(IMPLS)}")
    results = measure(kinds, args.n1, args.n2, args.warmup, args.profile, impls)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{'kind':9} {'raw':>9} {'trunkline':>10} {'ratio':>6}  (instructions per round "
              f"trip, client + server; n={args.n2}-{args.n1})")
        for kind, row in results.items():
            cells = [f"{row[impl]:9.0f}" if impl in row else " " * 9 for impl in IMPLS]
            ratio = f"{row['ratio']:6.3f}" if "ratio" in row else ""
            print(f"{kind:9} {cells[0]} {cells[1]:>10} {ratio}")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
