"""The ASGI ``lifespan`` protocol: startup before the first connection, shutdown after the
last one.

Modes: ``"on"`` requires the app to support lifespan (a failure stops the server);
``"auto"`` treats an app that raises before answering ``lifespan.startup`` as one without
lifespan support (logged at DEBUG) and goes on; ``"off"`` never sends the scope.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from ..errors import LifespanError
from .cycle import ASGIApp, Message

log = logging.getLogger("trunkline.server")


class Lifespan:
    def __init__(self, app: ASGIApp, mode: Literal["auto", "on", "off"] = "auto",
                 state: dict[str, Any] | None = None) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {} if state is None else state
        self.supported = mode != "off"
        self.started = False
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_done: asyncio.Future[None] | None = None
        self._shutdown_done: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._failed: str | None = None

    async def startup(self) -> None:
        if not self.supported:
            return
        loop = asyncio.get_running_loop()
        self._startup_done = loop.create_future()
        self._shutdown_done = loop.create_future()
        self._task = loop.create_task(self._main())
        await self._inbox.put({"type": "lifespan.startup"})
        await self._startup_done
        if self._failed is not None:
            raise LifespanError(f"lifespan startup failed: {self._failed}")
        self.started = self.supported

    async def shutdown(self) -> None:
        if not self.started or self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        assert self._shutdown_done is not None
        await self._shutdown_done
        if self._failed is not None:
            raise LifespanError(f"lifespan shutdown failed: {self._failed}")

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:  # noqa: BLE001 - reported through the futures
            startup = self._startup_done
            if startup is not None and not startup.done():
                if self.mode == "auto":
                    log.debug("ASGI app does not support lifespan (%r); going on", exc)
                    self.supported = False
                else:
                    log.error("Exception in ASGI lifespan startup", exc_info=exc)
                    self._failed = repr(exc)
                startup.set_result(None)
            else:
                log.error("Exception in ASGI lifespan", exc_info=exc)
                self._failed = repr(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            for fut in (self._startup_done, self._shutdown_done):
                if fut is not None and not fut.done():
                    fut.set_result(None)

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        startup, shutdown = self._startup_done, self._shutdown_done
        assert startup is not None and shutdown is not None
        if kind == "lifespan.startup.complete":
            startup.set_result(None)
        elif kind == "lifespan.startup.failed":
            self._failed = message.get("message", "") or "the app reported failure"
            startup.set_result(None)
        elif kind == "lifespan.shutdown.complete":
            shutdown.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            self._failed = message.get("message", "") or "the app reported failure"
            shutdown.set_result(None)
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")


__all__ = ["Lifespan", "LifespanError"]
