"""Reading back a ``trunkline bench ... --plot`` PNG, to check it against the ``--json`` figures.

The PNG carries, in its text metadata, what matplotlib drew (bar heights from the bar
rectangles, whisker ends from the error-bar segments); these helpers decode the image, check
its size and that it has trunkline's bars in it, and compare bars with expected figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from trunkline.bench.plot import COLOURS, DPI, PANEL_HEIGHT, read_png_metadata


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))


def read_plot(path: Path) -> dict[str, Any]:
    """The figure drawn into ``path``, after checking the PNG decodes at the size its panel
    count gives and shows trunkline's bar colour."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    figure = read_png_metadata(str(path))
    with Image.open(path) as image:
        image.load()  # decodes every pixel: a truncated file fails here
        assert image.format == "PNG"
        assert list(image.size) == figure["size"]
        width, height = image.size
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=width * height)}
    assert height == round((1.3 + PANEL_HEIGHT * len(figure["panels"])) * DPI)
    assert width >= 8 * DPI
    assert _rgb(COLOURS[0]) in colours, "no trunkline bar in the picture"
    return figure


def bar(figure: dict[str, Any], panel: int, group: str, peer: str) -> dict[str, float] | None:
    [found] = [g for g in figure["panels"][panel]["groups"] if g["label"] == group]
    value: dict[str, float] | None = found["bars"][peer]
    return value


def assert_bar(figure: dict[str, Any], panel: int, group: str, peer: str, value: float,
               values: list[float]) -> None:
    """The bar of ``peer`` in ``group`` is ``value`` high, its whisker spans ``values``."""
    drawn = bar(figure, panel, group, peer)
    assert drawn is not None, f"no {peer} bar in {group}"
    assert drawn["value"] == pytest.approx(value, rel=1e-9)
    assert drawn["low"] == pytest.approx(min(values), rel=1e-9)
    assert drawn["high"] == pytest.approx(max(values), rel=1e-9)
