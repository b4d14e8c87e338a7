"""``trunkline bench transports``: every socket kind's round trip and bulk throughput, raw and
trunkline, in a tiny run of real processes; the plot agrees with the JSON. No timing
assertions."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from tests.support.bench_plot import assert_bar, read_plot
from tests.support.cli_helpers import run
from trunkline.bench.transports import DEFAULT_KINDS, run_transports

#: one kind per code path: TCP, Unix stream (path and abstract share it), FIFO pair, datagram
#: (udp shares it with unixgram; the udp bench's tests cover it), so the run stays short
KINDS = ["tcp4", "abstract", "fifo", "unixgram"]


@pytest.mark.timeout(120)
def test_round_trip_and_bulk_per_kind_with_plot(tmp_path: Path) -> None:
    plot = tmp_path / "transports.png"
    done = run(["bench", "transports", "--kinds", ",".join(KINDS), "--rounds", "20",
                "--warmup", "5", "--bulk-size", "1M", "--bulk-rounds", "1", "--datagram-size",
                "4096", "--datagram-seconds", "0.1", "--json", "--plot", str(plot)],
               timeout=110)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["errors"] == {}
    rows = {row["kind"]: row for row in report["kinds"]}
    assert list(rows) == KINDS
    for kind, row in rows.items():
        latency = row["latency"]
        assert latency["error"] is None, (kind, latency["error"])
        for impl in ("raw", "trunkline"):
            assert latency[impl]["rounds"] == 20 and latency[impl]["p50_us"] > 0
            assert len(latency[impl]["block_p50_us"]) == 1  # 20 round trips: one block
            bulk = row["bulk"][impl]
            assert len(bulk["mib_per_s"]) == 1 and bulk["mib_per_s"][0] > 0
            if kind in ("udp", "unixgram"):
                assert all(0 <= lost <= 100 for lost in bulk["lost_percent"])
            else:
                assert bulk["lost_percent"] == [None]
        assert row["bulk_ratio"] == pytest.approx(
            row["bulk"]["trunkline"]["median_mib_per_s"] / row["bulk"]["raw"]["median_mib_per_s"])
    assert rows["tcp4"]["bulk"]["raw"]["vs_tcp4"] == 1.0

    figure = read_plot(plot)
    latency_panel, bulk_panel = figure["panels"]
    assert latency_panel["ylabel"] == "microseconds" and bulk_panel["ylabel"] == "MiB/s"
    for kind, row in rows.items():
        for impl in ("raw", "trunkline"):
            lat = row["latency"][impl]
            assert_bar(figure, 0, kind, impl, lat["p50_us"], lat["block_p50_us"])
            rates = row["bulk"][impl]["mib_per_s"]
            assert_bar(figure, 1, kind, impl, statistics.median(rates), rates)
        group = next(g for g in bulk_panel["groups"] if g["label"] == kind)
        assert group["note"] == f"{row['bulk_ratio']:.2f}x raw"


def test_library_call_and_bad_kinds() -> None:
    assert {"tcp4", "unix", "abstract", "fifo", "udp", "unixgram"} == set(DEFAULT_KINDS)
    result = run_transports(["unix"], rounds=10, warmup=2, bulk_size=256 << 10, bulk_rounds=1)
    assert result.latency["unix"].ratio is not None
    assert result.bulk_median("unix", "raw") and result.bulk_median("unix", "trunkline")
    done = run(["bench", "transports", "--kinds", "sctp"])
    assert done.returncode == 2 and b"unknown kind 'sctp'" in done.stderr
    done = run(["bench", "transports", "--bulk-size", "lots"])
    assert done.returncode == 2 and b"bad size 'lots'" in done.stderr
