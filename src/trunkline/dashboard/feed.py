"""``Feed``: the latest value of something that changes, for every watcher at once.

A WebSocket handler waits with ``newer(version)``; publishing wakes all of them, and each
sends the newest value (a slow page skips the versions it missed instead of queueing them).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Feed(Generic[T]):
    def __init__(self, value: T) -> None:
        self.value = value
        self.version = 0
        self._changed = asyncio.Event()

    def publish(self, value: T) -> None:
        self.value = value
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def newer(self, version: int) -> tuple[int, T]:
        """The value once its version is above ``version`` (at once if it already is)."""
        while self.version <= version:
            await self._changed.wait()
        return self.version, self.value
