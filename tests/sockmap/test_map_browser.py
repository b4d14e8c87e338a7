"""``trunkline map --html``: the page of a real topology rendered by headless Chromium (driven
over the DevTools pipe, as the other browser tests do) with the vendored mermaid: it renders
with no console error, one drawn edge per connection labelled as the map says, one box per
process; a screenshot is written for people to look at.

Needs Debian's ``chromium`` (CI installs it); fails, rather than skips, without it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.test_websocket_browser import evaluate, headless_chromium
from tests.support.cli_helpers import Service
from tests.support.sockmap import Peer, connect_client, socat_client, socat_server, stop_all, unique
from trunkline.sockmap import MapFilter, ServiceRecord, SocketMap, build_map
from trunkline.sockmap.render import address_text, render_html

RENDERED = """new Promise((resolve, reject) => {
  const started = Date.now();
  (function poll() {
    const state = document.body.getAttribute("data-rendered");
    if (state) resolve(state);
    else if (Date.now() - started > 30000) reject(new Error("mermaid did not finish"));
    else setTimeout(poll, 20);
  })();
})"""

DRAWN = """({
  edges: document.querySelectorAll("svg path.flowchart-link").length,
  labels: Array.from(document.querySelectorAll("svg g.edgeLabel"),
                     (e) => e.textContent.trim()).filter((t) => t),
  nodes: Array.from(document.querySelectorAll("svg g.node"), (n) => n.textContent.trim()),
  error: (document.getElementById("diagram-error") || {}).textContent || null,
})"""


@pytest.fixture
def topology_map() -> Iterator[SocketMap]:
    """An echo service on TCP, an abstract name and a FIFO with a client each, and a socat
    pair; mapped with the service labelled."""
    tmp = Path(tempfile.mkdtemp(prefix="tl-", dir="/tmp"))
    peers: list[Peer] = []
    try:
        with Service(["serve", "echo", "--on", "tcp://127.0.0.1:0", "--on", f"unix:@{unique()}",
                      "--on", f"fifo://{tmp / 'echo.fifo'}"]) as server:
            urls = server.wait_ready(3)
            peers += [connect_client(url) for url in urls]
            socat, listening = socat_server(f"UNIX-LISTEN:{tmp / 'socat.sock'}")
            peers.append(socat)
            peers.append(socat_client(f"UNIX-CONNECT:{listening}"))
            pids = frozenset({server.proc.pid, *(p.pid for p in peers)})
            yield build_map(MapFilter(pids=pids), [ServiceRecord("echo", tuple(urls))])
            stop_all(peers)
            peers.clear()
            assert server.stop() == 0
    finally:
        stop_all(peers)
        shutil.rmtree(tmp, ignore_errors=True)


def _errors(events: list[dict[str, Any]]) -> list[str]:
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append(str(params.get("exceptionDetails")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append(str(params.get("args")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            found.append(str(params["entry"].get("text")))
    return found


@pytest.mark.timeout(120)
async def test_chromium_draws_one_edge_per_connection(topology_map: SocketMap,
                                                      tmp_path: Path) -> None:
    the_map = topology_map
    assert len(the_map.connections) == 4  # three to the service, one socat pair
    page = tmp_path / "map.html"
    page.write_text(render_html(the_map, title="trunkline map test"), encoding="utf-8")

    async with headless_chromium() as devtools:
        targets = await devtools.call("Target.getTargets")
        first = next(t for t in targets["targetInfos"] if t["type"] == "page")
        attached = await devtools.call("Target.attachToTarget", targetId=first["targetId"],
                                       flatten=True)
        session = attached["sessionId"]
        for domain in ("Runtime", "Log", "Page"):  # before loading: every error is seen
            await devtools.call(f"{domain}.enable", session)
        await devtools.call("Page.navigate", session, url=f"file://{page}")
        await asyncio.wait_for(devtools.wait_event("Page.loadEventFired"), 60)
        state = await asyncio.wait_for(evaluate(devtools, session, RENDERED), 60)
        drawn = await evaluate(devtools, session, DRAWN)
        shot = await devtools.call("Page.captureScreenshot", session, format="png",
                                   captureBeyondViewport=True)
        errors = _errors(devtools.events)

    assert state == "ok", drawn["error"]
    assert errors == []
    assert drawn["edges"] == len(the_map.connections)
    assert sorted(drawn["labels"]) == sorted(address_text(c.kind, c.address)
                                             for c in the_map.connections)
    boxes = drawn["nodes"]
    for pid in {p for c in the_map.connections for p in c.pids}:
        assert sum(f"pid {pid}" in box for box in boxes) == 1, boxes
    assert any("service: echo" in box for box in boxes)

    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG")
    out = Path(os.environ.get("TRUNKLINE_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    (out / "sockmap.png").write_bytes(png)
    shutil.copy(page, out / "sockmap.html") if out != tmp_path else None
