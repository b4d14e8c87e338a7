"""Private event-loop machinery: the one place that touches asyncio's private names.

- this module: the event loop choice, uvloop when installed (libuv transports), else the
  stdlib loop;
- ``resume``: ``resume_now``, run a task waiting on one of our futures inside the callback
  that completes it (reads ``Future._callbacks``);
- ``eager``: ``EagerRunner``, run a coroutine inside a protocol callback with a stand-in task
  (``asyncio.tasks._enter_task``/``_leave_task``).

Nothing here imports anything from trunkline; everything above may import it.
"""

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
