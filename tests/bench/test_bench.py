"""Smoke tests for the benchmark workloads (``trunkline.bench``, ``trunkline bench``).

Each workload runs with tiny counts in real, separate processes, to prove it works end to end
for every socket kind. No timing assertions: the figures belong in benchmarks/README.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from trunkline.bench import KINDS, run_pingpong, run_relay_bulk
from trunkline.bench.process import BenchError
from trunkline.bench.relay_bulk import parse_size
from trunkline.bench.report import pingpong_table, relay_table
from trunkline.bench.stats import Latency

TRUNKLINE = [sys.executable, "-m", "trunkline"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_pingpong_every_kind(kind: str) -> None:
    seen: list[tuple[int, int, str]] = []
    [result] = run_pingpong([kind], ["same"], rounds=20, warmup=5, block=10,
                            progress=lambda done, total, what: seen.append((done, total, what)))
    assert result.error is None, result.error
    assert result.raw is not None and result.raw.rounds == 20
    assert result.trunkline is not None and result.trunkline.rounds == 20
    assert result.ratio is not None and result.meets_target is not None
    assert seen[0] == (0, 1, f"{kind}, same CPU") and seen[-1] == (1, 1, "done")
    assert pingpong_table([result]).row_count == 1


def test_pingpong_cross_cpu_with_bigger_pings() -> None:
    [result] = run_pingpong(["unix"], ["cross"], rounds=10, warmup=2, size=4000, block=3)
    assert result.error is None, result.error
    assert result.raw is not None and result.trunkline is not None
    assert result.raw.rounds == result.trunkline.rounds == 10


def test_pingpong_refuses_unknown_kinds_and_placements() -> None:
    with pytest.raises(BenchError, match="unknown kind 'sctp'"):
        run_pingpong(["sctp"])
    with pytest.raises(BenchError, match="unknown placement"):
        run_pingpong(["unix"], ["diagonal"])


def test_relay_bulk_moves_every_byte() -> None:
    relays = ["trunkline"] + (["socat"] if shutil.which("socat") else [])
    size = 4 << 20
    result = run_relay_bulk(size, relays)
    assert result.errors == {}
    for relay in relays:
        [run] = result.runs[relay]
        assert run.bytes == size and run.seconds > 0
    if "socat" in relays:
        assert result.ratio is not None
    assert relay_table(result).row_count == len(relays)


def test_parse_size() -> None:
    assert parse_size("1G") == parse_size("1GiB") == 1 << 30
    assert parse_size("256M") == 256 << 20
    assert parse_size("64k") == 64 << 10
    assert parse_size("1000") == 1000
    for bad in ("", "G", "1X", "-1M", "0"):
        with pytest.raises(BenchError):
            parse_size(bad)


def test_latency_from_samples() -> None:
    latency = Latency.from_samples([1000 * i for i in range(1, 101)], elapsed_ns=1_000_000)
    assert latency.rounds == 100
    assert latency.p50_us == 51.0 and latency.p99_us == 100.0
    assert latency.rate == 100_000.0
    assert Latency.from_json(latency.to_json()) == latency


def test_cli_pingpong_json() -> None:
    done = subprocess.run([*TRUNKLINE, "bench", "pingpong", "--kinds", "tcp4,unix",
                           "--placement", "same", "--rounds", "10", "--warmup", "2",
                           "--block", "5", "--json"], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [r["kind"] for r in report["results"]] == ["tcp4", "unix"]
    for row in report["results"]:
        assert row["error"] is None and row["raw"]["rounds"] == row["trunkline"]["rounds"] == 10


def test_cli_pingpong_table() -> None:
    done = subprocess.run([*TRUNKLINE, "bench", "pingpong", "--kinds", "abstract",
                           "--placement", "cross", "--rounds", "10", "--warmup", "2"],
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert b"abstract" in done.stdout and b"ratio" in done.stdout


def test_cli_relay_json() -> None:
    done = subprocess.run([*TRUNKLINE, "bench", "relay", "--size", "2M", "--relays",
                           "trunkline", "--json"], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["size"] == 2 << 20 and len(report["runs"]["trunkline"]) == 1


def test_cli_help_and_bad_usage() -> None:
    for args in (["bench"], ["bench", "pingpong"], ["bench", "relay"]):
        done = subprocess.run([*TRUNKLINE, *args, "--help"], capture_output=True, timeout=30)
        assert done.returncode == 0 and b"Examples:" in done.stdout
    done = subprocess.run([*TRUNKLINE, "bench", "pingpong", "--kinds", "sctp"],
                          capture_output=True, timeout=30)
    assert done.returncode == 2 and b"unknown kind 'sctp'" in done.stderr
    done = subprocess.run([*TRUNKLINE, "bench", "relay", "--size", "lots"],
                          capture_output=True, timeout=30)
    assert done.returncode == 2 and b"bad size" in done.stderr
