"""Placeholder: the fd transport is being written."""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedError


async def open(address: Any, factory: Any, options: Any, tracer: Any = None, conn: int = 0
               ) -> Any:
    raise UnsupportedError("fd transport not written yet")


async def listen(address: Any, factory: Any, options: Any) -> Any:
    raise UnsupportedError("fd transport not written yet")
