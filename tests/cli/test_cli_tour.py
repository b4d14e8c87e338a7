"""``trunkline tour`` end to end: every transport named, exit 0, nothing left behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.cli_helpers import run

TITLES = ["TCP loopback", "Unix socket (path)", "Unix socket (abstract)", "FIFO pair",
          "UDP loopback"]


def test_tour_runs_every_transport_and_cleans_up() -> None:
    done = run(["tour", "--rounds", "50"], timeout=60)
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    for title in TITLES:
        assert title in out
    for step in ("resolve", "connect", "send", "receive", "close"):
        assert step in out
    assert "side by side" in out and "p50" in out and "p99" in out
    match = re.search(r"cleanup: removed (\S+);", out)
    assert match, out
    assert not Path(match.group(1)).exists()


def test_tour_json_only_some_legs() -> None:
    done = run(["tour", "--rounds", "20", "--json", "--only", "tcp", "--only", "udp"],
               timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True
    assert [leg["name"] for leg in result["legs"]] == ["tcp", "udp"]
    tcp, udp = result["legs"]
    assert [s["step"] for s in tcp["steps"]][:1] == ["resolve"]
    assert tcp["client_url"].startswith("tcp://localhost:")
    assert tcp["client"]["local"]["port"] == tcp["server"]["peer"]["port"]
    assert tcp["server"]["local"]["port"] == tcp["client"]["peer"]["port"]
    assert tcp["latency"]["rounds"] == 20 and tcp["latency"]["size"] == 64
    assert tcp["latency"]["p50_ns"] <= tcp["latency"]["p99_ns"]
    assert udp["server"]["local"]["protocol"] == "udp"
    cleanup = result["cleanup"]
    assert cleanup["ok"] and cleanup["leftovers"] == [] and cleanup["abstract_left"] == []
    assert not Path(cleanup["tmpdir"]).exists()


def test_tour_unknown_leg_is_a_usage_error() -> None:
    done = run(["tour", "--only", "carrier-pigeon"])
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "carrier-pigeon" in err and "tcp" in err and "fifo" in err
