"""``trunkline bench byname``: a tiny real run (no timing asserted): both workloads, both
sides, the ratio as the JSON's own figures give it, and the plot drawn from the same."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from PIL import Image

from tests.support.bench_plot import assert_bar
from tests.support.cli_helpers import run
from trunkline.bench.plot import read_png_metadata


def test_bench_byname_json_and_plot(tmp_path: Path) -> None:
    plot = tmp_path / "byname.png"
    done = run(["bench", "byname", "--blocks", "3", "--http-per-block", "5",
                "--raw-per-block", "3", "--json", "--plot", str(plot)], timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["target"] == 1.05
    http, raw = report["results"]
    assert http["workload"] == "http keep-alive GET" and http["per_block"] == 5
    assert raw["workload"] == "raw connect + 64 B round trip" and raw["per_block"] == 3
    # both bars are trunkline's (by name, by address): no "trunkline" peer colour to look for
    figure = read_png_metadata(str(plot))
    with Image.open(plot) as image:
        image.load()  # a truncated file fails here
        assert list(image.size) == figure["size"]
    assert [p["title"] for p in figure["panels"]] == [http["workload"], raw["workload"]]
    for panel, pair in enumerate((http, raw)):
        assert len(pair["by_name_blocks"]) == len(pair["direct_blocks"]) == 3
        assert pair["by_name_s"] == statistics.median(pair["by_name_blocks"])
        assert pair["ratio"] == pair["by_name_s"] / pair["direct_s"]
        group = f"{pair['per_block']} per block"
        assert_bar(figure, panel, group, "by name", pair["by_name_s"] * 1e6,
                   [b * 1e6 for b in pair["by_name_blocks"]])
        assert_bar(figure, panel, group, "by address", pair["direct_s"] * 1e6,
                   [b * 1e6 for b in pair["direct_blocks"]])


def test_bench_byname_table() -> None:
    done = run(["bench", "byname", "--blocks", "1", "--http-per-block", "3",
                "--raw-per-block", "2"], timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "a call by name (cached) vs the same call by address" in out
    assert "http keep-alive GET" in out and "raw connect + 64 B round trip" in out
    assert out.count("<= 1.05x") == 2
