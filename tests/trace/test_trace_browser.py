"""The ``--trace=html`` page of a real call, rendered by headless Chromium with the vendored
mermaid library: the SVG must hold one message arrow per traced step, labelled as the Mermaid
source says, numbered 1..N.

Needs Debian's ``chromium`` (CI installs it); the test fails, rather than skips, without it.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import shutil
import tempfile
from typing import TYPE_CHECKING

import pytest

from tests.trace.test_trace_calls import traced_echo_call
from tests.trace.test_trace_render import arrows
from trunkline.resolve import DnsResolver
from trunkline.trace.html import render_html
from trunkline.trace.mermaid import render_mermaid

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--virtual-time-budget=20000"]

if TYPE_CHECKING:
    from tests.support.dnsserver import DnsServer

# the dns_server fixture; imported by pytest (not above), so its asserts are rewritten
pytest_plugins = ["tests.support.dnsserver"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed to render the trace page: "
                "apt-get install chromium (CI installs it)")


async def dump_dom(page: str) -> str:
    profile = tempfile.mkdtemp(prefix="tl-chromium-")
    try:
        proc = await asyncio.create_subprocess_exec(
            chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", f"file://{page}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 100)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        return out.decode()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def mermaid_text(label: str) -> str:
    """What mermaid shows for a label: its entity codes decoded."""
    return re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), label)


@pytest.mark.timeout(150)
async def test_chromium_renders_one_arrow_per_step(dns_server: DnsServer,
                                                   tmp_path: os.PathLike[str]) -> None:
    call = await traced_echo_call("tcp://127.0.0.1:0", "tcp://api.test:{port}",
                                  resolver=DnsResolver(dns_server.address))
    events = call.merged
    expected = [mermaid_text(label) for _, _, label in arrows(render_mermaid(events))]
    assert len(expected) == len(events)
    page = f"{os.fspath(tmp_path)}/trace.html"
    with open(page, "w", encoding="utf-8") as f:
        f.write(render_html(events, title="tcp://api.test echo; traced"))

    dom = await dump_dom(page)
    assert 'data-rendered="ok"' in dom, "mermaid did not finish rendering the diagram"
    match = re.search(r'<svg[^>]*aria-roledescription="sequence".*?</svg>', dom, re.DOTALL)
    assert match, "no sequence-diagram SVG in the rendered page"
    svg = match.group(0)

    # one drawn message (a line, or a loop path for a server-to-itself step) per step
    assert svg.count('data-et="message"') == len(events)
    shown = [html.unescape(t) for t in re.findall(
        r'<text[^>]*class="messageText"[^>]*>([^<]*)</text>', svg)]
    assert shown == expected
    numbers = re.findall(r'<text[^>]*class="sequenceNumber"[^>]*>(\d+)</text>', svg)
    assert numbers == [str(n) for n in range(1, len(events) + 1)]
    actors = set(re.findall(r'<tspan[^>]*>([^<]*)</tspan>', svg))
    assert "OS/Networking" in actors
    assert f"DNS udp 127.0.0.1:{dns_server.port}" in actors
    assert any(a.startswith("Application 127.0.0.1:") for a in actors)
    assert any(a.startswith("Server 127.0.0.1:") for a in actors)
