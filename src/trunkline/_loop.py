"""Event loop choice: uvloop when installed (libuv transports), else the stdlib loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool = True) -> T:
    """``asyncio.run`` on uvloop when it is installed and wanted."""
    if use_uvloop and have_uvloop():
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
