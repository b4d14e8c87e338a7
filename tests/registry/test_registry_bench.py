"""benchmarks/registry.py runs (tiny counts): registration and cached resolve, both backends.
No timing is asserted; the figures live in benchmarks/README.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.registry.etcd_cluster import ETCD

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "registry.py"


@pytest.mark.parametrize("backend", ["sqlite", "etcd"])
def test_registry_benchmark_runs(backend: str) -> None:
    if backend == "etcd" and ETCD is None:
        pytest.skip("etcd is not installed (Debian package etcd-server)")
    args = ["--backends", backend, "--count", "20", "--resolves", "1000", "--connects", "3",
            "--blocks", "2", "--http-per-block", "5", "--raw-per-block", "3", "--json"]
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                            text=True, timeout=50, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [registration] = report["registration"]
    assert registration["registry"] == backend and registration["count"] == 20
    assert registration["one_by_one_s"] > 0 and registration["concurrent_s"] > 0
    [resolve] = report["resolve"]
    assert resolve["cached_us"] > 0 and resolve["calls"] == 1000
    assert [c["kind"] for c in report["connect"]] == ["abstract", "unix", "fifo", "tcp"]
    http, raw = report["by_name"]
    assert http["workload"] == "http keep-alive GET" and http["per_block"] == 5
    assert raw["workload"] == "raw connect + 64 B round trip" and raw["per_block"] == 3
    for pair in (http, raw):
        assert len(pair["by_name_blocks"]) == len(pair["direct_blocks"]) == 2
        assert pair["ratio"] == pair["by_name_s"] / pair["direct_s"]
