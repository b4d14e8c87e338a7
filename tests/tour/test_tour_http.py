"""The tour's HTTP leg: one demo API server on tcp, unix, abstract and fifo, called over each."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.support.cli_helpers import run
from trunkline.tour import HttpLeg, HttpLegResult, run_tour

TRANSPORTS = ["tcp", "unix", "abstract", "fifo"]
TITLES = ["TCP loopback", "Unix socket (path)", "Unix socket (abstract)", "FIFO pair"]


def test_tour_http_shows_every_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # wide enough that no body is cut short
    done = run(["tour", "--only", "http", "--rounds", "200"], timeout=60)
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "HTTP API (http)" in out and "HTTP side by side" in out and "vs tcp" in out
    for title in TITLES:
        assert title in out
    for name in TRANSPORTS:
        assert f'"name":"tour-{name}"' in out  # the user this transport created, echoed back
        assert re.search(rf"│ {name} +│ 201 200 200 +│ +[\d.]+ .s │ +[\d.]+ .s │ +[\d.]+x │ yes",
                         out), out
    assert out.count("POST /users HTTP/1.1") == 4 and out.count("GET /users HTTP/1.1") == 4
    assert len(re.findall(r"GET /users/\d+ HTTP/1\.1", out)) == 4
    assert "50 keep-alive GET /users/{id} per transport" in out
    assert "lifespan    startup ran, shutdown ran" in out
    assert "lifespan shutdown ran, api.sock, api.fifo removed" in out
    match = re.search(r"cleanup: removed (\S+);", out)
    assert match, out
    assert not Path(match.group(1)).exists()


def test_tour_http_json() -> None:
    done = run(["tour", "--only", "http", "--rounds", "200", "--json"], timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True
    [leg] = result["legs"]
    assert leg["name"] == "http" and leg["kind"] == "http" and leg["ok"] and not leg["error"]
    http = leg["http"]
    assert http["requests"] == 50  # a quarter of --rounds
    assert http["lifespan"] == {"startup": True, "shutdown": True}
    assert [t["name"] for t in http["transports"]] == TRANSPORTS
    ids = set()
    abstract_url = http["transports"][2]["server_url"]  # unix:@trunkline-tour-api-PID-TOKEN
    tour_pid = int(abstract_url.split("-")[3])
    for t in http["transports"]:
        assert t["ok"] and t["error"] is None and t["connections"] == 1
        post, listed, one = t["calls"]
        assert (post["status"], listed["status"], one["status"]) == (201, 200, 200)
        assert post["request_line"] == "POST /users HTTP/1.1"
        assert listed["request_line"] == "GET /users HTTP/1.1"
        user = json.loads(post["body"])
        assert user["name"] == f"tour-{t['name']}"
        ids.add(user["id"])
        assert one["request_line"] == f"GET /users/{user['id']} HTTP/1.1"
        assert json.loads(one["body"]) == user
        assert user in json.loads(listed["body"])
        assert [c["connection"] for c in t["calls"]] == ["new", "reused", "reused"]
        assert all(c["duration_ns"] > 0 for c in t["calls"])
        assert all(c["peer"] == post["peer"] and c["local"] == post["local"] for c in t["calls"])
        lat = t["latency"]
        assert lat["rounds"] == 50 and lat["size"] == one["body_bytes"]
        assert 0 < lat["min_ns"] <= lat["p50_ns"] <= lat["p99_ns"] <= lat["max_ns"]
        assert t["p50_vs_tcp"] > 0
        view = t["server_view"]
        assert view is not None
        if t["name"] == "tcp":
            assert t["p50_vs_tcp"] == 1.0
            assert t["url"].startswith("http://127.0.0.1:")
            assert view["peer"] == t["client"]["local"] == post["local"]
            assert view["local"] == t["client"]["peer"] and view["credentials"] is None
        else:
            assert view["credentials"]["uid"] == os.getuid()
            assert view["credentials"]["pid"] == tour_pid  # the client is the tour itself
        if t["name"] in ("unix", "abstract"):
            assert t["client"]["peer"] == t["server_url"]
        if t["name"] == "abstract":
            assert t["server_url"].startswith("unix:@") and t["url"].startswith("http+unix://%40")
        if t["name"] == "fifo":
            assert t["url"].startswith("http+fifo://") and t["client"]["local"]
    assert len(ids) == 4
    cleanup = result["cleanup"]
    assert cleanup["ok"] and cleanup["leftovers"] == [] and cleanup["abstract_left"] == []
    assert not Path(cleanup["tmpdir"]).exists()


def test_tour_only_names_the_http_leg() -> None:
    done = run(["tour", "--only", "htttp"])
    assert done.returncode == 2
    assert "http" in done.stderr.decode().split("available:")[1]


async def test_http_leg_in_process() -> None:
    """The library API, on the default asyncio loop (the CLI runs uvloop)."""
    result = await run_tour([HttpLeg(requests=5)], rounds=1000)
    assert result.ok, result.to_dict()
    [leg] = result.legs
    assert isinstance(leg, HttpLegResult)
    assert leg.requests == 5 and leg.baseline is not None
    assert [t.latency.rounds for t in leg.transports if t.latency] == [5, 5, 5, 5]
    assert leg.to_dict()["http"]["transports"][0]["p50_vs_tcp"] == 1.0
    assert result.cleanup is not None and result.cleanup.ok
    assert not Path(result.cleanup.tmpdir).exists()
