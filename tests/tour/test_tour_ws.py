"""The tour's WebSocket leg: full duplex over TCP loopback and a Unix socket, shown and checked."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.support.cli_helpers import run
from trunkline.tour import WsLeg, WsLegResult, run_tour

TITLES = ["TCP loopback", "Unix socket (path)"]


def test_tour_ws_shows_full_duplex_on_both_transports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "140")
    done = run(["tour", "--only", "ws", "--rounds", "200"], timeout=60)
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "WebSocket, full duplex (ws)" in out and "WebSocket side by side" in out
    for title in TITLES:
        assert title in out
    # 200 rounds: 20 messages each way, 50 round trips, 20 pings per transport
    assert out.count("20 sent, 20 received, 20 acks back") == 2
    assert out.count("20 pushed, 20 received") == 2
    assert len(re.findall(r"full duplex +yes: the client had received [1-9]\d* ticks before "
                          r"its last send, the server [1-9]\d* messages", out)) == 2, out
    # the timeline: both sides' first events, in time order
    assert out.count("sent msg 0") == 2 and out.count("pushed tick 0") == 2
    assert out.count("got msg 0") == 2 and out.count("got tick 0") == 2
    for name in ("tcp", "unix"):
        assert re.search(rf"│ {name} +│ +20 │ +[1-9]\d*/[1-9]\d* │ +[\d.]+ .s │ +[\d.]+ .s │ "
                         r"+[\d.]+ .s │ yes", out), out
    assert "ping RTT" in out and "round trip" in out
    assert "no connection open, ws.sock removed" in out
    match = re.search(r"cleanup: removed (\S+);", out)
    assert match, out
    assert not Path(match.group(1)).exists()


def test_tour_ws_json() -> None:
    done = run(["tour", "--only", "ws", "--rounds", "120", "--json"], timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True
    [leg] = result["legs"]
    assert leg["name"] == "ws" and leg["kind"] == "websocket" and leg["ok"] and not leg["error"]
    ws = leg["websocket"]
    assert (ws["messages"], ws["rounds"], ws["pings"]) == (12, 30, 20)
    assert [t["name"] for t in ws["transports"]] == ["tcp", "unix"]
    for t in ws["transports"]:
        assert t["ok"] and t["error"] is None and t["messages"] == 12
        assert t["client_to_server"] == {"sent": 12, "received": 12, "acks_back": 12}
        assert t["server_to_client"] == {"pushed": 12, "received": 12}
        duplex = t["full_duplex"]
        assert duplex["ok"] is True
        assert 0 < duplex["client_ticks_before_last_send"] <= 12
        assert 0 < duplex["server_msgs_before_last_push"] <= 12
        timeline = t["timeline"]
        assert len(timeline) == 16
        assert [e["at_ns"] for e in timeline] == sorted(e["at_ns"] for e in timeline)
        assert {e["side"] for e in timeline} == {"client", "server"}
        # interleaved within the first events: each side received before it sent again
        client = [e["what"].split()[0] for e in timeline if e["side"] == "client"]
        server = [e["what"].split()[0] for e in timeline if e["side"] == "server"]
        assert client.index("got") < last(client, "sent"), client
        assert server.index("got") < last(server, "pushed"), server
        assert t["ping"]["rounds"] == 20 and 0 < t["ping"]["p50_ns"] <= t["ping"]["max_ns"]
        lat = t["latency"]
        assert lat["rounds"] == 30 and 0 < lat["min_ns"] <= lat["p50_ns"] <= lat["p99_ns"]
        assert t["close_code"] == 1000
        view = t["server_view"]
        assert view is not None and view["kind"] == t["name"]
        if t["name"] == "tcp":
            assert t["url"].startswith("ws://127.0.0.1:") and t["url"].endswith("/tcp")
            assert view["peer"] == t["client"]["local"].removeprefix("tcp ")
        else:
            assert t["url"].startswith("ws+unix://%2F") and t["url"].endswith("/unix")
            assert view["credentials"]["uid"] == os.getuid()
    cleanup = result["cleanup"]
    assert cleanup["ok"] and cleanup["leftovers"] == [] and cleanup["abstract_left"] == []
    assert not Path(cleanup["tmpdir"]).exists()


def last(items: list[str], item: str) -> int:
    return len(items) - 1 - items[::-1].index(item)


async def test_ws_leg_in_process() -> None:
    """The library API, on the default asyncio loop (the CLI runs uvloop)."""
    result = await run_tour([WsLeg(messages=8, rounds=5, pings=3)], rounds=1000)
    assert result.ok, result.to_dict()
    [leg] = result.legs
    assert isinstance(leg, WsLegResult)
    assert [t.name for t in leg.transports] == ["tcp", "unix"]
    for t in leg.transports:
        assert t.full_duplex and t.server_got == t.client_ticks == 8
        assert t.latency is not None and t.latency.rounds == 5
        assert t.ping is not None and t.ping.rounds == 3
    assert result.cleanup is not None and result.cleanup.ok
    assert not Path(result.cleanup.tmpdir).exists()
