"""The ``discover`` step of a call by name in every renderer: text timeline, JSON, Mermaid,
HTML and ``-w %{time_discover}``, from a real call to a registered server."""

from __future__ import annotations

import json
import os
from typing import Any

import trunkline
from trunkline.registry import Resolver, open_registry, registration_hook
from trunkline.server.run import AppServer
from trunkline.trace.events import Step, TraceEvent, Tracer
from trunkline.trace.html import render_html
from trunkline.trace.mermaid import render_mermaid
from trunkline.trace.timeline import render_json, render_timeline
from trunkline.trace.writeout import write_out


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _traced_call(sqlite_url: str) -> tuple[list[TraceEvent], list[str]]:
    hook = registration_hook("users", protocol="http", registry=sqlite_url)
    urls = [f"unix:@tl-trdisc-{os.getpid()}", "tcp://127.0.0.1:0"]
    async with AppServer(_ok, *urls, hooks=[hook]) as server, \
            Resolver(open_registry(sqlite_url), owns_store=True) as names:
        tracer = Tracer()
        async with trunkline.Client(registry=names, tracer=tracer) as client:
            response = await client.get("http+svc://users/")
            assert response.status_code == 200
        return tracer.events, server.urls


async def test_every_renderer_shows_the_discover_step(sqlite_url: str) -> None:
    events, urls = await _traced_call(sqlite_url)
    [discover] = [e for e in events if e.step is Step.DISCOVER]

    timeline = render_timeline(events)
    assert "Discover" in timeline and "discover:" in timeline
    assert f"by name: users in {sqlite_url}, 1 instance(s); chose {urls[0]}: same network " \
           "namespace: abstract name reachable" in timeline
    assert "Unix Connect" in timeline  # the connection's own kind is still told

    document = json.loads(render_json(events))
    assert document["summary"]["service"] == "users"
    assert document["summary"]["discover"]["chosen"] == urls[0]
    assert document["summary"]["time_discover"] == round(
        (discover.end_ns - min(e.start_ns for e in events if e.side == "client")) / 1e9, 9)
    assert any(e["step"] == "discover" for e in document["events"])

    diagram = render_mermaid(events)
    assert f"participant Registry as Registry {sqlite_url}" in diagram
    assert f"App->>Registry: discover users: 1 instance(s) -> {urls[0]} (same network " \
           "namespace: abstract name reachable)" in diagram
    assert diagram.index("Registry: discover") < diagram.index("Unix socket connect")

    page = render_html(events)
    assert "discover users" in page and "by name: users" in page

    discover_s, connect_s = write_out("%{time_discover} %{time_connect}", events).split()
    assert 0 < float(discover_s) <= float(connect_s)


async def test_a_stale_view_is_marked() -> None:
    events = [TraceEvent(Step.DISCOVER, "client", 0, 1000, 0,
                         {"service": "users", "backend": "etcd://10.0.0.5:2379",
                          "instances": 1, "cached": True, "stale": True,
                          "chosen": "tcp://10.0.0.5:80", "reason": "other host: TCP"}),
              TraceEvent(Step.CONNECT, "client", 1000, 5000, 1, {})]
    assert "stale: the registry is unreachable" in render_timeline(events)
    assert "(cached) (stale)" in render_mermaid(events)
