"""``--plot`` on the older bench commands (pingpong, relay, ws), what happens without
matplotlib, and the progress bar: drawn on a terminal (a real pty), silent in a pipe."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.support.bench_plot import assert_bar, read_plot
from tests.support.cli_helpers import TRUNKLINE, run

PINGPONG = ["bench", "pingpong", "--kinds", "unix", "--placement", "same,cross",
            "--rounds", "30", "--warmup", "2", "--block", "10"]


def test_pingpong_plot_matches_json(tmp_path: Path) -> None:
    plot = tmp_path / "pingpong.png"
    done = run([*PINGPONG, "--json", "--plot", str(plot)], timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    results = json.loads(done.stdout)["results"]
    figure = read_plot(plot)
    assert [len(p["groups"]) for p in figure["panels"]] == [1, 1]  # same, cross
    for row in results:
        panel = 0 if row["placement"] == "same" else 1
        for impl in ("raw", "trunkline"):
            latency = row[impl]
            assert len(latency["block_p50_us"]) == 3  # 30 round trips in blocks of 10
            assert_bar(figure, panel, row["kind"], impl, latency["p50_us"],
                       latency["block_p50_us"])
        group = next(g for g in figure["panels"][panel]["groups"] if g["label"] == row["kind"])
        assert group["note"] == f"{row['ratio_p50']:.2f}x raw"


def test_relay_plot_matches_json(tmp_path: Path) -> None:
    if shutil.which("socat") is None:
        pytest.skip("needs socat")
    plot = tmp_path / "relay.png"
    done = run(["bench", "relay", "--size", "4M", "--repeat", "2", "--json", "--plot",
                str(plot)], timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    figure = read_plot(plot)
    [group] = figure["panels"][0]["groups"]
    for relay in ("trunkline", "socat"):
        rates = [run["mib_per_s"] for run in report["runs"][relay]]
        assert_bar(figure, 0, group["label"], relay, report["median_mib_per_s"][relay], rates)
    assert group["note"] == f"{report['ratio']:.2f}x socat"


def test_ws_plot_matches_json(tmp_path: Path) -> None:
    plot = tmp_path / "ws.png"
    done = run(["bench", "ws", "--impls", "trunkline,aiohttp", "--transports", "tcp,unix",
                "--modes", "seq,pipe", "--rounds", "2", "--seconds", "0.05", "--warmup", "0",
                "--json", "--plot", str(plot)], timeout=90)
    assert done.returncode == 0, done.stderr.decode()
    cells = json.loads(done.stdout)["cells"]
    figure = read_plot(plot)
    for cell in cells:
        panel = ["seq", "pipe"].index(cell["mode"])
        assert_bar(figure, panel, cell["transport"], cell["impl"],
                   statistics.median(cell["rates"]), cell["rates"])
        if cell["impl"] == "trunkline":
            group = next(g for g in figure["panels"][panel]["groups"]
                         if g["label"] == cell["transport"])
            assert group["note"] == f"{cell['vs_aiohttp']:.2f}x aiohttp"


def _without_matplotlib(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python cannot import matplotlib (a sitecustomize that refuses
    it), as on a machine without the plot extra."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoMatplotlib:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'matplotlib' or name.startswith('matplotlib.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'matplotlib'\", name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _NoMatplotlib())\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(blocker), env.get("PYTHONPATH")) if p)
    return env


@pytest.mark.parametrize("command", [["pingpong", "--kinds", "unix"], ["udp"], ["http"],
                                     ["transports"], ["relay"], ["ws"]])
def test_plot_without_matplotlib_is_a_clear_usage_error(command: list[str],
                                                        tmp_path: Path) -> None:
    env = _without_matplotlib(tmp_path)
    check = subprocess.run([sys.executable, "-c", "import matplotlib"], env=env,
                           capture_output=True, timeout=30)
    assert check.returncode != 0  # the blocker works
    plot = tmp_path / "out.png"
    started = time.monotonic()
    done = subprocess.run([*TRUNKLINE, "bench", *command, "--plot", str(plot)], env=env,
                          capture_output=True, timeout=30)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "--plot needs matplotlib" in err and "pip install 'trunkline[plot]'" in err
    assert not plot.exists()
    assert done.stdout == b""  # refused before measuring anything
    assert time.monotonic() - started < 30


def test_plot_into_a_missing_folder(tmp_path: Path) -> None:
    done = run(["bench", "pingpong", "--kinds", "unix", "--plot",
                str(tmp_path / "nope" / "x.png")])
    assert done.returncode == 23 and b"cannot write --plot" in done.stderr  # curl's write error
    assert b"does not exist" in done.stderr


# --------------------------------------------------------------------------- progress


def _run_in_pty(args: list[str], timeout: float = 60.0) -> tuple[int, str]:
    """Run ``trunkline ARGS`` with stdout and stderr on a 120x40 pseudo-terminal; everything
    it drew, and its exit status."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([*TRUNKLINE, *args], stdin=child, stdout=child, stderr=child,
                            env=env, close_fds=True)
    os.close(child)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the child side is closed
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    return code, b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("args, described", [
    (["pingpong", "--kinds", "unix", "--placement", "same", "--rounds", "3000", "--warmup",
      "100"], "unix, same CPU"),
    (["udp", "--kinds", "unixgram", "--rate", "2000pps", "--size", "64", "--seconds", "0.5",
      "--rounds", "1"], "round 1: "),
])
def test_progress_bar_on_a_terminal_not_in_a_pipe(args: list[str], described: str) -> None:
    code, screen = _run_in_pty(["bench", *args])
    assert code == 0, screen
    assert described in screen, screen  # the bar's description: only the bar shows it
    assert "\x1b[?25l" in screen  # rich hides the cursor while the bar is live ...
    assert "\x1b[?25h" in screen  # ... and shows it again when done
    piped = run(["bench", *args], timeout=60)
    assert piped.returncode == 0
    assert described.encode() not in piped.stderr and "━".encode() not in piped.stderr
