"""``--trace=html``: one self-contained page that draws the call's Mermaid diagram offline.

The page inlines the vendored mermaid library (``vendor/mermaid.min.js``, MIT), the diagram
source and the text timeline, so it needs no network and no other file.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

from .events import TraceEvent
from .mermaid import render_mermaid
from .timeline import render_timeline

MERMAID_VERSION = "11.17.2"


@cache
def mermaid_js() -> str:
    """The vendored mermaid build (about 3.5 MB), read once."""
    return (resources.files(__package__) / "vendor" / "mermaid.min.js").read_text("utf-8")


def _script_tag(js: str) -> str:
    # Inline as is unless the code holds "</script" (ends the element) or "<script" (after a
    # "<!--" it makes the parser skip the real end tag); then a data: URL carries it, still
    # offline but a third larger.
    if re.search(r"</?script", js, re.IGNORECASE):
        data = base64.b64encode(js.encode("utf-8")).decode("ascii")
        return f'<script src="data:text/javascript;base64,{data}"></script>'
    return f"<script>\n{js}\n</script>"


def mermaid_script() -> str:
    """The vendored mermaid library as one inline ``<script>`` element, for any offline page
    that draws diagrams (the trace page here, ``trunkline map --html``)."""
    return _script_tag(mermaid_js())


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.3em; }
pre.timeline { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 0.85em; }
details { margin-top: 1.5em; }
"""


def render_html(events: Iterable[TraceEvent], *, conn: int | None = None, local: Any = None,
                remote: Any = None, title: str = "trunkline trace") -> str:
    """A complete HTML document showing the call as a sequence diagram and a timeline."""
    events = list(events)
    diagram = render_mermaid(events, conn=conn, local=local, remote=remote)
    timeline = render_timeline(events, conn=conn, local=local, remote=remote)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<pre class="mermaid">
{html.escape(diagram)}</pre>
<pre class="timeline">{html.escape(timeline)}</pre>
<details><summary>Mermaid source</summary><pre id="source">{html.escape(diagram)}</pre></details>
<!-- mermaid {MERMAID_VERSION} (MIT license, see trunkline/trace/vendor/LICENSE) -->
{_script_tag(mermaid_js())}
<script>
mermaid.initialize({{ startOnLoad: false, securityLevel: "strict",
                     sequence: {{ showSequenceNumbers: true }} }});
mermaid.run({{ querySelector: "pre.mermaid" }})
  .then(() => document.body.setAttribute("data-rendered", "ok"))
  .catch((err) => {{
    document.body.setAttribute("data-rendered", "error");
    const pre = document.createElement("pre");
    pre.textContent = "diagram failed: " + err;
    document.body.appendChild(pre);
  }});
</script>
</body>
</html>
"""
