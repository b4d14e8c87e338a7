"""``trunkline bench http``: tiny runs of the real servers (trunkline serve, uvicorn, granian
when installed) under the real load generators (wrk, h2load). No timing assertions: only that
every cell is measured (or says why not), the ratios and the plot agree with the figures."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.support.bench_plot import assert_bar, read_plot
from tests.support.cli_helpers import run
from trunkline.bench.http_servers import Case, ServerUnsupportedError, available, server_argv

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("h2load") is None,
                                reason="needs wrk and h2load (apt-get install wrk "
                                       "nghttp2-client)")


def _serve_knows_workers() -> bool:
    done = run(["serve", "--help"])
    return b"--workers" in done.stdout


@pytest.mark.timeout(120)
def test_every_server_over_tcp_and_unix_with_plot(tmp_path: Path) -> None:
    plot = tmp_path / "http.png"
    done = run(["bench", "http", "--kinds", "tcp,unix", "--workers", "1", "--rounds", "1",
                "--seconds", "1", "--warmup", "0", "--json", "--plot", str(plot)], timeout=110)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    servers = ["trunkline", "uvicorn", "granian"]
    cells = {(c["server"], c["label"]): c for c in report["cells"]}
    assert set(cells) == {(s, k) for s in servers for k in ("tcp 1w", "unix 1w")}
    measured = [s for s in servers if available(s) is None]
    for server in servers:
        for label in ("tcp 1w", "unix 1w"):
            cell = cells[(server, label)]
            if server not in measured:  # granian is optional
                assert "not installed" in cell["missing"] and cell["median"] is None
                continue
            assert cell["missing"] is None, cell["missing"]
            assert len(cell["rates"]) == 1 and cell["median"] > 0, cell
            assert cell["bad"] == [0], f"{server} {label}: non-2xx answers or socket errors"
            assert cell["median_cpu_us"] > 0 and cell["pinned"] is True
            assert cell["vs_uvicorn"] == pytest.approx(
                cell["median"] / cells[("uvicorn", label)]["median"])
    assert cells[("uvicorn", "tcp 1w")]["vs_uvicorn"] == 1.0
    assert b"plot written to" in done.stderr

    figure = read_plot(plot)
    [panel] = figure["panels"]
    assert [g["label"] for g in panel["groups"]] == ["tcp 1w", "unix 1w"]
    for server in measured:
        for label in ("tcp 1w", "unix 1w"):
            cell = cells[(server, label)]
            assert_bar(figure, 0, label, server, cell["median"], cell["rates"])
    for group in panel["groups"]:
        ratio = cells[("trunkline", group["label"])]["vs_uvicorn"]
        assert f"{ratio:.2f}x uvicorn" in group["note"]


@pytest.mark.timeout(90)
def test_workers_and_access_log_cells() -> None:
    """--workers 2 reaches trunkline serve: measured once serve knows --workers, else the
    cell says this serve does not support it; the access-log case runs both servers with
    their default logging."""
    done = run(["bench", "http", "--servers", "trunkline,uvicorn,trunkline-api", "--kinds",
                "tcp", "--workers", "2", "--access-log", "on", "--rounds", "1", "--seconds",
                "1", "--warmup", "0"], timeout=80)
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "tcp 2w log" in out and "uvicorn" in out
    rows = {line.split("│")[2].strip(): line for line in out.splitlines()
            if line.count("│") > 4 and line.split("│")[2].strip() in ("trunkline", "uvicorn",
                                                                      "trunkline-api")}
    assert "not supported" not in rows["uvicorn"] and "x" in rows["uvicorn"]
    assert "not supported by the library call" in out
    if _serve_knows_workers():
        assert "not supported" not in rows["trunkline"] and "x" in rows["trunkline"]
        assert "not supported by this trunkline serve" not in out
    else:
        assert "not supported" in rows["trunkline"]
        assert "not supported by this trunkline serve (it refused --workers" in out


def test_access_log_variant_drops_the_quiet_flags() -> None:
    quiet, logged = Case("tcp", 1, False), Case("tcp", 1, True)
    assert "-q" in server_argv("trunkline", quiet, "0")
    assert "-q" not in server_argv("trunkline", logged, "0")
    assert "--no-access-log" in server_argv("uvicorn", quiet, "8000")
    assert "--no-access-log" not in server_argv("uvicorn", logged, "8000")
    assert "--access-log" in server_argv("granian", logged, "8000")
    assert "--workers" not in server_argv("trunkline", quiet, "0")
    assert server_argv("trunkline", Case("unix", 2, False), "/x.sock")[-2:] == ["--workers", "2"]
    assert server_argv("trunkline-api", logged, "8000")[-2:] == ["tcp://127.0.0.1:8000", "on"]
    with pytest.raises(ServerUnsupportedError, match="not supported by the library call"):
        server_argv("trunkline-api", Case("tcp", 2, False), "8000")


def test_usage_errors() -> None:
    for args, message in ((["--servers", "hypercorn"], b"unknown server 'hypercorn'"),
                          (["--workers", "0"], b"'0' is not a worker count"),
                          (["--kinds", "sctp"], b"unknown transport 'sctp'"),
                          (["--access-log", "maybe"], b"unknown access-log setting")):
        done = run(["bench", "http", *args])
        assert done.returncode == 2, done
        assert message in done.stderr, done.stderr


@pytest.mark.timeout(90)
def test_workers_2_against_workers_1() -> None:
    """The scaling ratio: each server's 2-worker rate over its 1-worker rate, from the same
    run's medians (both servers measured with both counts)."""
    done = run(["bench", "http", "--servers", "trunkline,uvicorn", "--kinds", "tcp",
                "--workers", "1,2", "--rounds", "1", "--seconds", "1", "--warmup", "0",
                "--json"], timeout=80)
    assert done.returncode == 0, done.stderr.decode()
    cells = {(c["server"], c["workers"]): c for c in json.loads(done.stdout)["cells"]}
    for server in ("trunkline", "uvicorn"):
        one, two = cells[(server, 1)], cells[(server, 2)]
        assert one["vs_1_worker"] is None
        assert two["bad"] == [0] and not two["pinned"]
        assert two["vs_1_worker"] == pytest.approx(two["median"] / one["median"])
        # wrk's own CPU is counted (it is never free), and the ceiling follows from it
        assert one["median_load_cpu_us"] > 0 and two["median_load_cpu_us"] > 0
        s, w = one["median_cpu_us"], one["median_load_cpu_us"]
        cores = len(os.sched_getaffinity(0))
        assert two["ceiling_vs_1_worker"] == pytest.approx(
            min(2 / s, cores / (s + w), 1 / w) / min(1 / s, 1 / w))


def test_scaling_table_shows_the_ratio_per_server() -> None:
    from rich.console import Console

    from trunkline.bench.http import HttpBenchResult, HttpRun
    from trunkline.bench.http_report import http_scaling_table

    one, two = Case("tcp", 1, False), Case("tcp", 2, False)
    result = HttpBenchResult(["trunkline", "uvicorn"], [one, two], 1, 1, 0, 50)
    for server, rates in (("trunkline", (10_000.0, 17_000.0)), ("uvicorn", (9_000.0, 13_500.0))):
        result.runs[(server, one)] = [HttpRun(rates[0], 10_000, 0, 20.0)]
        result.runs[(server, two)] = [HttpRun(rates[1], 17_000, 0, 20.0)]
    # the load generator's CPU per request, known for trunkline only: its ceiling on two
    # cores is min(2/20, 2/(20+10), 1/10) / min(1/20, 1/10) = (1/15) / (1/20) = 1.33x
    result.runs[("trunkline", one)] = [HttpRun(10_000.0, 10_000, 0, 20.0, 10.0)]
    cores = len(os.sched_getaffinity(0))
    table = http_scaling_table(result)
    assert table is not None
    console = Console(record=True, width=150)
    console.print(table)
    text = console.export_text()
    assert "tcp 2w / 1w" in text and "1.70x (1.70x)" in text and "1.50x (1.50x)" in text
    expected = min(2 / 20, cores / 30, 1 / 10) / (1 / 20)  # 1.33x on two cores
    assert f"1.70x (1.70x) of <={expected:.2f}x" in text
    assert result.ceiling("uvicorn", two) is None  # no load CPU measured: no ceiling
    assert http_scaling_table(HttpBenchResult(["trunkline"], [one], 1, 1, 0, 50)) is None
