"""The dashboard app over real sockets: its routes and feeds with trunkline's client, the
read-only and same-origin rules, the live services and traces feeds."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from typing import Any

import pytest

import trunkline
from tests.dashboard.conftest import Bench
from trunkline.client import Client
from trunkline.dashboard import DashboardApp, DashboardConfig
from trunkline.errors import WebSocketHandshakeError
from trunkline.server import AppServer, ServerConfig


async def get_json(client: Client, url: str, status: int = 200) -> Any:
    response = await client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return json.loads(response.content)


async def next_value(ws: Any, predicate: Any, timeout: float = 20) -> Any:
    """The first pushed value for which ``predicate`` holds."""
    async def until() -> Any:
        while True:
            value = json.loads(await ws.recv())
            if predicate(value):
                return value

    return await asyncio.wait_for(until(), timeout)


def names(view: dict[str, Any]) -> list[str]:
    return sorted(i["service"] for i in view["instances"] or [])


@pytest.mark.timeout(60)
async def test_page_and_assets_ship_in_the_package(bench: Bench) -> None:
    async with Client() as client:
        page = await client.get(bench.origin + "/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        text = page.text
        for asset in ("/assets/app.js", "/assets/style.css", "/assets/mermaid.min.js"):
            assert f'"{asset}"' in text
            response = await client.get(bench.origin + asset)
            assert response.status_code == 200 and len(response.content) > 1000
        assert "http://" not in text.replace("http://www.w3.org", "")  # nothing from elsewhere
        head = await client.head(bench.origin + "/assets/mermaid.min.js")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) > 3_000_000
        assert (await client.get(bench.origin + "/nothing")).status_code == 404


@pytest.mark.timeout(60)
async def test_read_only_and_loopback_host_only(bench: Bench) -> None:
    async with Client() as client:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            response = await client.request(method, bench.origin + "/api/services",
                                            content=b"{}")
            assert response.status_code == 405
            assert response.headers["allow"] == "GET, HEAD"
        port = bench.dashboard.urls[0].rsplit(":", 1)[1]
        for host in (f"localhost:{port}", f"[::1]:{port}", f"127.0.0.1:{port}"):
            ok = await client.get(bench.origin + "/api/services", headers={"host": host})
            assert ok.status_code == 200, host
        rebound = await client.get(bench.origin + "/api/services",
                                   headers={"host": f"attacker.example:{port}"})
        assert rebound.status_code == 421
        assert b"loopback" in rebound.content


@pytest.mark.timeout(60)
async def test_websocket_refuses_another_origin(bench: Bench) -> None:
    ws_url = bench.origin.replace("http://", "ws://")
    with pytest.raises(WebSocketHandshakeError) as refused:
        async with trunkline.websocket(ws_url + "/ws/services",
                                       origin="http://attacker.example"):
            pass
    assert refused.value.status == 403
    with pytest.raises(WebSocketHandshakeError):
        async with trunkline.websocket(ws_url + "/ws/nothing"):
            pass
    async with trunkline.websocket(ws_url + "/ws/services", origin=bench.origin) as ws:
        assert names(json.loads(await ws.recv())) in ([], ["hello"])


@pytest.mark.timeout(60)
async def test_services_feed_follows_the_registry(bench: Bench) -> None:
    ws_url = bench.origin.replace("http://", "ws://") + "/ws/services"
    async with trunkline.websocket(ws_url) as ws:
        view = await next_value(ws, lambda v: names(v) == ["hello"])
        hello = view["instances"][0]
        assert hello["urls"] == bench.hello.urls and hello["protocol"] == "http"
        assert hello["pid"] == os.getpid() and hello["this_host"] is True
        assert view["registry"] == bench.registry and view["stale"] is False
        async with trunkline.register("users", ["unix:@tl-dash-users"], protocol="http",
                                      meta={"version": "1.2"}, registry=bench.registry):
            view = await next_value(ws, lambda v: names(v) == ["hello", "users"])
            users = next(i for i in view["instances"] if i["service"] == "users")
            assert users["urls"] == ["unix:@tl-dash-users"] and users["meta"] == {
                "version": "1.2"}
        await next_value(ws, lambda v: names(v) == ["hello"])
    async with Client() as client:
        assert names(await get_json(client, bench.origin + "/api/services")) == ["hello"]


@pytest.mark.timeout(60)
async def test_traces_feed_tails_the_directory(bench: Bench) -> None:
    ws_url = bench.origin.replace("http://", "ws://") + "/ws/traces"
    async with trunkline.websocket(ws_url) as ws, Client() as client:
        first = json.loads(await ws.recv())
        assert first["directory"] == str(bench.traces) and first["error"] is None
        for path in ("/one", "/two"):
            async with Client() as fresh:  # one connection, one trace each
                assert (await fresh.get(bench.hello_url + path)).status_code == 200
        async with Client() as kept:  # one connection, two requests: one trace of both
            for path in ("/a", "/b"):
                assert (await kept.get(bench.hello_url + path)).status_code == 200
        listing = await next_value(ws, lambda v: {"GET /one", "GET /two", "GET /a, GET /b"}
                                   <= {t["title"] for t in v["traces"]})
        two = next(t for t in listing["traces"] if t["title"] == "GET /two")
        assert two["side"] == "server" and two["status"] == 200 and two["kind"] == "tcp"
        assert two["remote"] == bench.hello.urls[0].removeprefix("tcp://")
        assert two["file"] == "server.jsonl"
        assert listing["traces"].index(two) < [t["title"] for t in listing["traces"]].index(
            "GET /one")  # newest first

        detail = await get_json(client, f"{bench.origin}/api/traces/{two['id']}")
        steps = [e["step"] for e in detail["events"]]
        assert steps[0] == "accept" and "request_headers" in steps and "close" in steps
        assert detail["mermaid"].startswith("sequenceDiagram")
        assert "server: request head parsed" in detail["mermaid"]
        assert detail["events"][0]["offset_ns"] == 0
        await get_json(client, f"{bench.origin}/api/traces/0123456789abcdef", 404)


@pytest.mark.timeout(60)
async def test_bench_results_and_only_those_files(bench: Bench) -> None:
    (bench.bench / "notes.txt").write_text("not a result")
    (bench.bench / "broken.json").write_text("{")
    async with Client() as client:
        listing = await get_json(client, bench.origin + "/api/bench")
        by_name = {r["name"]: r for r in listing["results"]}
        assert set(by_name) == {"pingpong", "broken"}
        pingpong = by_name["pingpong"]
        assert pingpong["plot"] == "pingpong.png" and pingpong["figures"]["rounds"] > 0
        assert pingpong["host"].startswith("Python")
        assert "not a benchmark result" in by_name["broken"]["error"]
        png = await client.get(bench.origin + "/api/bench/pingpong.png")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content == (bench.bench / "pingpong.png").read_bytes()
        for name in ("notes.txt", "..%2Fregistry.db", "../registry.db", "%2Fetc%2Fpasswd"):
            assert (await client.get(bench.origin + "/api/bench/" + name)).status_code == 404


@pytest.mark.timeout(60)
async def test_map_of_this_process_with_its_service(bench: Bench) -> None:
    async with Client() as client:
        data = await get_json(client, f"{bench.origin}/api/map?pid={os.getpid()}&listening=1")
        assert data["error"] is None
        listening = {s["local"] for s in data["map"]["sockets"]}
        for url in (bench.hello.urls[0], bench.dashboard.urls[0]):
            assert url.removeprefix("tcp://") in listening
        assert data["mermaid"].startswith("flowchart LR")
        assert "service: hello" in data["mermaid"]
        bad = await get_json(client, f"{bench.origin}/api/map?kind=carrier-pigeon", 400)
        assert "carrier-pigeon" in bad["error"] and "tcp" in bad["error"]
        bad = await get_json(client, f"{bench.origin}/api/map?pid=-3", 400)
        assert "process id" in bad["error"]


@pytest.mark.timeout(120)
async def test_services_from_etcd_marked_stale_while_it_is_away() -> None:
    from tests.registry.etcd_cluster import ETCD, EtcdCluster

    if ETCD is None:
        pytest.skip("etcd is not installed (Debian package etcd-server; .ci/run installs it)")
    cluster = EtcdCluster(1)
    try:
        cluster.start()
        url = cluster.url(f"/t{secrets.token_hex(4)}")
        app = DashboardApp(DashboardConfig(registry=url))
        async with AppServer(app, "tcp://127.0.0.1:0", config=ServerConfig(
                access_log=False, lifespan="on")) as dashboard:
            ws_url = "ws://" + dashboard.urls[0].removeprefix("tcp://") + "/ws/services"
            async with trunkline.register("users", ["unix:@tl-dash-etcd"], registry=url), \
                    trunkline.websocket(ws_url) as ws:
                view = await next_value(ws, lambda v: names(v) == ["users"])
                assert view["stale"] is False and view["registry"].startswith("etcd://")
                cluster.stop()
                view = await next_value(ws, lambda v: v["stale"], timeout=40)
                assert names(view) == ["users"] and view["error"]  # the last view, marked
                cluster.start()
                await next_value(ws, lambda v: not v["stale"] and names(v) == ["users"],
                                 timeout=60)
    finally:
        cluster.close()
