"""The benchmarks panel's data: ``trunkline bench ... --json`` files in one directory, each
with the PNG ``--plot`` drew beside it (same name, ``.png``), newest first.

    trunkline bench transports --json --plot results/transports.png > results/transports.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_JSON = 8 * 1024 * 1024


class BenchFolder:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("*.json"), key=_mtime, reverse=True)

    def listing(self) -> dict[str, Any]:
        """Each result: its name, when it was written, the host line, the figures at the
        top level of the JSON (rounds, size...) and whether a plot sits beside it."""
        try:
            files = self._files()
        except OSError as exc:
            return {"directory": str(self.directory), "results": [],
                    "error": f"cannot read {self.directory}: {exc.strerror or exc}"}
        results = []
        for path in files:
            item: dict[str, Any] = {"name": path.stem, "json": path.name,
                                    "written": _mtime(path), "host": None, "figures": {},
                                    "plot": None, "error": None}
            png = path.with_suffix(".png")
            if png.is_file():
                item["plot"] = png.name
            try:
                if path.stat().st_size > MAX_JSON:
                    raise ValueError("larger than 8 MiB")
                data = json.loads(path.read_text("utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                item["host"] = data.get("host")
                item["figures"] = {k: v for k, v in data.items() if k != "host" and isinstance(
                    v, str | int | float | bool)}
            except (OSError, ValueError) as exc:
                item["error"] = f"not a benchmark result: {exc}"
            results.append(item)
        return {"directory": str(self.directory), "results": results, "error": None}

    def file(self, name: str) -> tuple[bytes, bytes] | None:
        """The bytes and content type of one listed JSON or PNG file; None for any other
        name (nothing outside the listing is served)."""
        if name.endswith(".png"):
            kind = b"image/png"
        elif name.endswith(".json"):
            kind = b"application/json"
        else:
            return None
        try:
            listed = {p.name for p in self._files()} | {
                p.with_suffix(".png").name for p in self._files()}
            if name not in listed or "/" in name:
                return None
            return (self.directory / name).read_bytes(), kind
        except OSError:
            return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
