"""Smoke test for the WebSocket benchmark (``trunkline bench ws``): tiny runs in real, separate
processes, to prove the matrix works end to end. No timing assertions."""

from __future__ import annotations

import json

from tests.support.cli_helpers import run
from trunkline.bench.ws_peers import available


def test_bench_ws_runs_the_matrix() -> None:
    done = run(["bench", "ws", "--impls", "trunkline,websockets,aiohttp,picows", "--rounds",
                "1", "--seconds", "0.05", "--warmup", "0", "--json"], timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    cells = {(c["impl"], c["transport"], c["mode"]): c for c in result["cells"]}
    assert len(cells) == 4 * 2 * 2
    for impl in ("trunkline", "websockets", "aiohttp"):
        for transport in ("tcp", "unix"):
            for mode in ("seq", "pipe"):
                cell = cells[(impl, transport, mode)]
                assert cell["median"] > 0 and len(cell["rates"]) == 1, cell
                assert cell["inflight"] == (1 if mode == "seq" else 16)
                assert cell["client_cpu_us"] > 0
    assert cells[("aiohttp", "tcp", "seq")]["vs_aiohttp"] == 1.0
    assert cells[("trunkline", "tcp", "pipe")]["vs_aiohttp"] > 0
    # picows: measured over TCP when installed, never over Unix sockets (it cannot)
    assert "picows/unix" in result["errors"] or "picows" in result["errors"]
    assert cells[("picows", "unix", "seq")]["median"] is None
    if available("picows") is None:
        assert cells[("picows", "tcp", "seq")]["median"] > 0
        assert cells[("trunkline", "tcp", "seq")]["vs_picows"] > 0
    else:
        assert "not installed" in result["errors"]["picows"]
    assert result["meets_target"] in (True, False)


def test_bench_ws_table_and_usage_errors() -> None:
    done = run(["bench", "ws", "--impls", "trunkline,aiohttp", "--transports", "unix",
                "--modes", "seq", "--rounds", "1", "--seconds", "0.05", "--warmup", "0"],
               timeout=60)
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "WebSocket echo round trips per second" in out and "vs aiohttp" in out
    assert "trunkline" in out and "1.00x" in out  # aiohttp against itself
    done = run(["bench", "ws", "--impls", "tornado"])
    assert done.returncode == 2 and b"unknown implementation 'tornado'" in done.stderr
