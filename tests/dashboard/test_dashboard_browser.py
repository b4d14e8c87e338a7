"""The dashboard in a real headless Chromium (driven over the DevTools pipe, as the other
browser tests do): the page loads with no console error (nor a CSP violation), shows the
registered service, shows one registered after the page loaded without a reload (over its
WebSocket), shows a traced call in the trace list as it is written (client and server side
as one), draws the trace's sequence diagram and the socket map (SVG by the vendored
mermaid), and the benchmark plot. A screenshot is written for people to look at:
$TRUNKLINE_ARTIFACTS/dashboard.png (the README's picture), else the test's tmp dir.

Needs Debian's ``chromium`` (CI installs it); fails, rather than skips, without it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import trunkline
from tests.dashboard.conftest import Bench
from tests.server.test_websocket_browser import DevTools, evaluate, headless_chromium
from tests.sockmap.test_map_browser import _errors
from trunkline.client import Client
from trunkline.trace import JsonLinesSink, Step, Tracer

WAIT = 30_000  # ms, for the page's own polling


def until(condition: str, timeout_ms: int = WAIT) -> str:
    """A page expression that resolves to ``condition``'s value once it is truthy."""
    return f"""new Promise((resolve, reject) => {{
  const started = Date.now();
  (function poll() {{
    let value = null;
    try {{ value = ({condition}); }} catch (err) {{ value = null; }}
    if (value) resolve(value);
    else if (Date.now() - started > {timeout_ms}) reject(new Error("waited for: " +
      {json.dumps(condition)}));
    else setTimeout(poll, 20);
  }})();
}})"""


SERVICE_ROW = "document.querySelector('#services tr[data-service=\"{}\"]')"
SERVICES = ("Array.from(document.querySelectorAll('#services tr[data-service]'), "
            "r => r.getAttribute('data-service'))")


async def open_dashboard(devtools: DevTools, url: str) -> str:
    targets = await devtools.call("Target.getTargets")
    first = next(t for t in targets["targetInfos"] if t["type"] == "page")
    attached = await devtools.call("Target.attachToTarget", targetId=first["targetId"],
                                   flatten=True)
    session: str = attached["sessionId"]
    for domain in ("Runtime", "Log", "Page"):  # before loading: every error is seen
        await devtools.call(f"{domain}.enable", session)
    await devtools.call("Emulation.setDeviceMetricsOverride", session, width=1400,
                        height=1500, deviceScaleFactor=1, mobile=False)
    await devtools.call("Page.navigate", session, url=url)
    await asyncio.wait_for(devtools.wait_event("Page.loadEventFired"), 60)
    return session


async def traced_call(url: str, trace_file: Path) -> None:
    """``trunkline call URL --trace=json --trace-file FILE``, as a user would run it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trunkline", "call", url, "--trace=json", "--trace-file",
        str(trace_file), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert out == b"hello\n"


@pytest.mark.timeout(180)
async def test_dashboard_in_chromium(bench: Bench, tmp_path: Path) -> None:
    page = f"{bench.origin}/?pid={os.getpid()}"  # the map of this process: small and known
    async with headless_chromium() as devtools:
        session = await open_dashboard(devtools, page)

        async def wait(condition: str) -> Any:
            return await asyncio.wait_for(evaluate(devtools, session, until(condition)), 60)

        # the running service, from the registry
        await wait(SERVICE_ROW.format("hello"))
        assert await evaluate(devtools, session, SERVICES) == ["hello"]
        hello_urls = await evaluate(devtools, session, SERVICE_ROW.format("hello")
                                    + ".querySelector('td.addr').textContent")
        assert bench.hello.urls[0] in hello_urls

        # a service registered after load appears without a reload
        await evaluate(devtools, session, "window.loadedOnce = 'yes'")
        async with trunkline.register("late-svc", ["unix:@tl-dash-late"], protocol="raw",
                                      registry=bench.registry):
            await wait(SERVICE_ROW.format("late-svc"))
            assert await evaluate(devtools, session, "window.loadedOnce") == "yes"
            assert sorted(await evaluate(devtools, session, SERVICES)) == ["hello", "late-svc"]
        # ... and goes when it deregisters
        await wait(f"!{SERVICE_ROW.format('late-svc')}")

        # a traced call shows up in the trace list, client and server side as one
        await traced_call(f"{bench.hello_url}/traced?x=1", bench.traces / "call.json")
        item = ("Array.from(document.querySelectorAll('#traces li')).find(li => "
                "li.querySelector('.title').textContent.startsWith('GET /traced') && "
                "li.textContent.includes('client') && li.textContent.includes('server'))")
        await wait(item)
        assert await evaluate(devtools, session, "window.loadedOnce") == "yes"
        await evaluate(devtools, session, f"({item}).click()")
        await wait("document.querySelector('#trace-diagram[data-rendered=\"ok\"] svg')")
        shown = await evaluate(devtools, session, """({
          diagram: document.querySelector('#trace-diagram svg').textContent,
          bars: document.querySelectorAll('#trace-detail .waterfall .bar').length,
          serverBars: document.querySelectorAll('#trace-detail .waterfall .bar.server').length,
          timeline: (document.querySelector('#trace-detail pre.timeline') || {}).textContent,
        })""")
        assert "request headers sent" in shown["diagram"]
        assert "server: request head parsed" in shown["diagram"]
        assert shown["serverBars"] >= 3 and shown["bars"] > shown["serverBars"]
        assert "total:" in shown["timeline"]

        # what a trace file says is shown as text, never as markup
        hostile = '/<img src=x onerror="window.hit=1"><b id=bold>b</b>'
        with JsonLinesSink(bench.traces / "hostile.jsonl") as sink:
            tracer = Tracer(sink)
            tracer.record(Step.ACCEPT, "server", time.monotonic_ns(), 1, peer="<i>peer</i>")
            tracer.record(Step.REQUEST_HEADERS, "server", time.monotonic_ns(), 1,
                          method="GET", target=hostile)
        shown_title = await wait("(Array.from(document.querySelectorAll('#traces .title'))"
                                 ".find(t => t.textContent.includes('onerror')) || {})"
                                 ".textContent")
        assert shown_title.startswith(f"GET {hostile}")
        assert await evaluate(devtools, session, "document.getElementById('bold') === null "
                              "&& window.hit === undefined")
        (bench.traces / "hostile.jsonl").unlink()  # a removed file's traces leave the list
        await wait("!Array.from(document.querySelectorAll('#traces .title'))"
                   ".some(t => t.textContent.includes('onerror'))")

        # the socket map of this process: the dashboard's and hello's listeners, drawn
        state = await wait("document.getElementById('map-panel').getAttribute('data-rendered')")
        drawn = await evaluate(devtools, session, """({
          svg: !!document.querySelector('#map-diagram svg'),
          nodes: Array.from(document.querySelectorAll('#map-diagram svg g.node'),
                            n => n.textContent),
          sockets: Array.from(document.querySelectorAll('#map-sockets tbody tr'),
                              r => r.textContent),
          error: (document.querySelector('#map-diagram .notes') || {}).textContent || null,
        })""")
        assert state == "ok", drawn["error"]
        assert drawn["svg"]
        assert any(f"pid {os.getpid()}" in n and "service: hello" in n for n in drawn["nodes"])
        port = bench.dashboard.urls[0].rsplit(":", 1)[1]
        assert any(f"127.0.0.1:{port}" in row and "LISTEN" in row for row in drawn["sockets"])

        # a service's "map" button: the map of that service, the filter in the page's URL
        await evaluate(devtools, session, SERVICE_ROW.format("hello")
                       + ".querySelector('button.to-map').click()")
        await wait("location.search.includes('service=hello') && document.getElementById("
                   "'map-panel').getAttribute('data-rendered') === 'ok'")
        services = await evaluate(devtools, session, "Array.from(document.querySelectorAll("
                                  "'#map-connections tbody tr td:last-child'), "
                                  "td => td.textContent)")
        assert services and all("hello" in s for s in services)  # and who talks to it

        # the benchmark result with its plot, loaded
        plot = await wait("(() => { const img = document.querySelector("
                          "'[data-bench=\"pingpong\"] img'); "
                          "return img && img.complete && img.naturalWidth; })()")
        assert plot > 100

        # for the picture: two more instances, and two plain calls (server side only)
        async with trunkline.register("users", ["unix:@tl-dash-users", "tcp://127.0.0.1:8001"],
                                      protocol="http", meta={"version": "1.2"},
                                      registry=bench.registry), \
                trunkline.register("users", ["unix:@tl-dash-users-2"], protocol="http",
                                   registry=bench.registry):
            for path in ("/users", "/users/7"):
                async with Client() as fresh:
                    assert (await fresh.get(bench.hello_url + path)).status_code == 200
            await wait("document.querySelectorAll('#services tr[data-service=\"users\"]')"
                       ".length === 2")
            await wait("document.querySelectorAll('#traces li').length === 3")
            await evaluate(devtools, session, "window.scrollTo(0, 0)")
            shot = await devtools.call("Page.captureScreenshot", session, format="png",
                                       captureBeyondViewport=True)
        errors = _errors(devtools.events)

    assert errors == []
    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG")
    out = Path(os.environ.get("TRUNKLINE_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dashboard.png").write_bytes(png)
