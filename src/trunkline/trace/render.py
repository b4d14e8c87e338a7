"""``render(fmt, events)``: the ``--trace=FORMAT`` switch over every renderer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .events import TraceEvent
from .html import render_html
from .mermaid import render_mermaid
from .timeline import render_json, render_timeline

#: ``--trace=FORMAT`` names and their renderers; each takes (events, *, conn, local, remote).
RENDERERS = {"text": render_timeline, "json": render_json, "mermaid": render_mermaid,
             "html": render_html}


def render(fmt: str, events: Iterable[TraceEvent], **options: Any) -> str:
    """Render ``events`` as ``fmt`` (text, json, mermaid or html): the ``--trace`` switch."""
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown trace format {fmt!r}; choose one of "
                         f"{', '.join(RENDERERS)}") from None
    return renderer(events, **options)


__all__ = ["RENDERERS", "render"]
