"""Bar charts of benchmark results as PNG files (``--plot FILE.png``), with matplotlib.

Every chart has the same shape: one panel per measure, groups along the x axis (a socket kind,
a case), one bar per peer in each group (trunkline first), a whisker per bar over the rounds
(what the whisker spans is written on the chart), and the ratio of each group written above
it. Each bench builds a ``Chart`` from its result; this module only draws.

The values actually drawn (read back from matplotlib's bar and whisker artists after
drawing, not copied from the input) are stored as JSON in the PNG's text metadata under
``trunkline-bench``, so a test or a script can check the picture against ``--json``.

matplotlib is an optional extra (``pip install 'trunkline[plot]'``); ``require_matplotlib``
says so clearly when it is missing.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .process import BenchError

METADATA_KEY = "trunkline-bench"
DPI = 100
PANEL_HEIGHT = 3.6  # inches per panel
#: Bar colours: trunkline always the first (blue) on every chart; the peers take the others.
COLOURS = ("#1f6feb", "#8b949e", "#d29922", "#2da44e", "#a371f7", "#cf222e")


class PlotUnavailableError(BenchError):
    """``--plot`` asked for, but matplotlib is not installed."""


def require_matplotlib() -> None:
    """Raise ``PlotUnavailableError`` (with the fix) unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise PlotUnavailableError(
            f"--plot needs matplotlib, which is not installed ({exc}); install it with "
            "pip install 'trunkline[plot]' (or pip install matplotlib), or leave out --plot"
        ) from None


@dataclass(frozen=True)
class Bar:
    """One peer's bar in a group: ``value`` is the bar (e.g. the median of the rounds),
    ``low``/``high`` the whisker's ends (None: no whisker); ``value`` None: not measured."""

    peer: str
    value: float | None
    low: float | None = None
    high: float | None = None
    missing: str = "n/a"  # written where the bar would be when value is None


@dataclass(frozen=True)
class Group:
    label: str
    bars: Sequence[Bar]
    note: str = ""  # written above the group, e.g. "1.42x uvicorn"


@dataclass(frozen=True)
class Panel:
    title: str
    ylabel: str  # the measure and its unit, e.g. "requests/s"
    groups: Sequence[Group]
    higher_is_better: bool = True


@dataclass(frozen=True)
class Chart:
    title: str
    panels: Sequence[Panel]
    bars: str  # what a bar is, e.g. "median of 3 rounds"
    whiskers: str  # what a whisker spans, e.g. "min..max of the rounds"
    footnote: str = ""  # where it was measured
    peers: Sequence[str] = field(default=())  # legend order; default: order of appearance

    def peer_order(self) -> list[str]:
        order = list(self.peers)
        for panel in self.panels:
            for group in panel.groups:
                order.extend(b.peer for b in group.bars if b.peer not in order)
        return order


def figure_size(chart: Chart) -> tuple[int, int]:
    """The PNG's size in pixels (width, height)."""
    groups = max((len(p.groups) for p in chart.panels), default=1)
    width = max(8.0, 1.6 + 1.1 * groups * max(1, len(chart.peer_order())) / 2)
    height = 1.3 + PANEL_HEIGHT * max(1, len(chart.panels))
    return round(width * DPI), round(height * DPI)


def render_png(chart: Chart, path: str) -> dict[str, Any]:
    """Draw ``chart`` into the PNG file ``path``; returns what was drawn (also stored in the
    file's metadata): per panel, per group, per peer, the bar height and whisker ends."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, never a display
    import matplotlib.pyplot as plt

    peers = chart.peer_order()
    others = iter(COLOURS[1:] * 4)
    colour = {peer: COLOURS[0] if peer == "trunkline" else next(others) for peer in peers}
    width_px, height_px = figure_size(chart)
    fig, axes = plt.subplots(len(chart.panels), 1, squeeze=False,
                             figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    drawn: list[dict[str, Any]] = []
    try:
        for ax, panel in zip(axes[:, 0], chart.panels, strict=True):
            drawn.append(_draw_panel(ax, panel, peers, colour))
        # about 11 characters of a 12-point title per inch of figure
        title = textwrap.fill(chart.title, width=max(40, int(width_px / DPI * 11)))
        fig.suptitle(title, fontsize=12, fontweight="bold")
        text = f"bar: {chart.bars}; whisker: {chart.whiskers}."
        if chart.footnote:
            text += f" {chart.footnote}"
        fig.text(0.01, 0.005, text, fontsize=7.5, color="#57606a", ha="left", va="bottom",
                 wrap=True)
        top = 0.97 - 0.025 * title.count("\n")
        fig.tight_layout(rect=(0, 0.04, 1, top))
        figure = {"title": chart.title, "bars": chart.bars, "whiskers": chart.whiskers,
                  "size": [width_px, height_px], "panels": drawn}
        fig.savefig(path, format="png", dpi=DPI,
                    metadata={METADATA_KEY: json.dumps(figure), "Software": "trunkline bench"})
    finally:
        plt.close(fig)
    return figure


def _draw_panel(ax: Any, panel: Panel, peers: list[str], colour: dict[str, str]
                ) -> dict[str, Any]:
    present = [p for p in peers if any(b.peer == p for g in panel.groups for b in g.bars)]
    slot = 0.8 / max(1, len(present))
    tops: list[float] = []
    bars_by_peer: dict[str, tuple[Any, Any, list[int]]] = {}
    for i, peer in enumerate(present):
        xs, heights, lows, highs, where = [], [], [], [], []
        for g, group in enumerate(panel.groups):
            bar = next((b for b in group.bars if b.peer == peer), None)
            if bar is None or bar.value is None:
                continue
            xs.append(g - 0.4 + slot * (i + 0.5))
            heights.append(bar.value)
            low = bar.value if bar.low is None else bar.low
            high = bar.value if bar.high is None else bar.high
            lows.append(bar.value - low)
            highs.append(high - bar.value)
            where.append(g)
            tops.append(high)
        if not xs:
            continue
        container = ax.bar(xs, heights, width=slot * 0.92, color=colour[peer], label=peer,
                           zorder=2)
        whiskers = ax.errorbar(xs, heights, yerr=[lows, highs], fmt="none", ecolor="#24292f",
                               elinewidth=1, capsize=3, zorder=3)
        bars_by_peer[peer] = (container, whiskers, where)
        for g, group in enumerate(panel.groups):  # an unmeasured bar says so
            bar = next((b for b in group.bars if b.peer == peer), None)
            if bar is not None and bar.value is None:
                ax.text(g - 0.4 + slot * (i + 0.5), 0, f" {bar.missing}", ha="center",
                        va="bottom", fontsize=7, color="#9a6700", rotation=90)
    top = max(tops, default=1.0) or 1.0
    for g, group in enumerate(panel.groups):
        if group.note:
            group_top = max((b.high if b.high is not None else b.value or 0.0)
                            for b in group.bars) if group.bars else 0.0
            ax.text(g, group_top + top * 0.03, group.note, ha="center", va="bottom",
                    fontsize=8, fontweight="bold", color="#24292f")
    ax.set_ylim(0, top * 1.4)  # room for the ratios and the legend
    ax.set_xticks(range(len(panel.groups)), [g.label for g in panel.groups], fontsize=8.5)
    ax.set_xlim(-0.6, len(panel.groups) - 0.4)
    better = "higher is better" if panel.higher_is_better else "lower is better"
    ax.set_title(f"{panel.title} ({better})", fontsize=10)
    ax.set_ylabel(panel.ylabel, fontsize=9)
    ax.grid(axis="y", color="#d0d7de", linewidth=0.6, zorder=0)
    ax.legend(fontsize=8, loc="upper right", ncols=max(1, len(present)), frameon=False)
    return {"title": panel.title, "ylabel": panel.ylabel,
            "groups": _read_back(panel, bars_by_peer)}


def _read_back(panel: Panel, bars_by_peer: dict[str, tuple[Any, Any, list[int]]]
               ) -> list[dict[str, Any]]:
    """The bars as matplotlib holds them: heights from the rectangles, whisker ends from
    the error-bar line segments."""
    groups: list[dict[str, Any]] = [{"label": g.label, "note": g.note, "bars": {}}
                                    for g in panel.groups]
    for peer, (container, whiskers, where) in bars_by_peer.items():
        segments = whiskers.lines[2][0].get_segments()
        for rect, segment, g in zip(container.patches, segments, where, strict=True):
            (_, low), (_, high) = segment[0], segment[-1]
            groups[g]["bars"][peer] = {"value": float(rect.get_height()),
                                       "low": float(min(low, high)),
                                       "high": float(max(low, high))}
    for group, source in zip(groups, panel.groups, strict=True):
        for bar in source.bars:
            group["bars"].setdefault(bar.peer, None)  # not measured
    return groups


def read_png_metadata(path: str) -> dict[str, Any]:
    """What ``render_png`` stored in ``path`` (needs Pillow, which matplotlib brings)."""
    from PIL import Image

    with Image.open(path) as image:
        text = image.info.get(METADATA_KEY)
    if not isinstance(text, str):
        raise BenchError(f"{path} has no {METADATA_KEY} metadata: not drawn by trunkline bench")
    data: dict[str, Any] = json.loads(text)
    return data


def spread(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(min, max) of the rounds: the whisker."""
    return (min(values), max(values)) if values else (None, None)


def ratio_note(ours: float | None, theirs: float | None, against: str) -> str:
    """'1.42x uvicorn': ours / theirs, the same ratio the bench's table prints (for times,
    above 1 means slower; the panel title says which way is better)."""
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return ""
    return f"{ours / theirs:.2f}x {against}"


__all__ = ["METADATA_KEY", "Bar", "Chart", "Group", "Panel", "PlotUnavailableError",
           "figure_size", "ratio_note", "read_png_metadata", "render_png",
           "require_matplotlib", "spread"]
