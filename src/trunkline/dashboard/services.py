"""The services panel's data: the registry's live view, followed through ``Store.watch``.

The store's watch yields the whole view after every change (SQLite: a data-version poll;
etcd: its watch stream), marked stale while the backend is away; each view becomes one JSON
document on a ``Feed``. The socket map labels sockets from the same view (``records``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..registry import HostIdentity, Instance, RegistryView, Store
from ..sockmap.services import ServiceRecord
from .feed import Feed

log = logging.getLogger("trunkline.dashboard")


def instance_json(instance: Instance, here: HostIdentity) -> dict[str, Any]:
    return {"service": instance.service, "id": instance.id, "urls": list(instance.urls),
            "protocol": instance.protocol, "pid": instance.pid,
            "hostname": instance.host.hostname, "this_host": here.same_pids(instance.host),
            "started": instance.started, "ttl": instance.ttl,
            "expires": instance.expires or None, "meta": dict(instance.meta)}


def view_json(view: RegistryView | None, registry: str, here: HostIdentity
              ) -> dict[str, Any]:
    """One view as the page reads it; ``instances`` is None until the registry answered."""
    if view is None:
        return {"registry": registry, "instances": None, "stale": False, "error": None,
                "at": None}
    instances = None if view.instances is None else sorted(
        (instance_json(i, here) for i in view.instances),
        key=lambda i: (i["service"], i["started"], i["id"]))
    return {"registry": registry, "instances": instances, "stale": view.stale,
            "error": view.error, "at": view.at}


class ServicesWatch:
    """Follows ``store.watch()`` in a task from ``start`` to ``stop``; ``feed`` has the view."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.here = HostIdentity.current()
        self.view: RegistryView | None = None
        self.feed: Feed[dict[str, Any]] = Feed(view_json(None, store.url, self.here))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="trunkline-dashboard-services")

    async def _follow(self) -> None:
        try:
            async for view in self.store.watch():
                self.view = view
                self.feed.publish(view_json(view, self.store.url, self.here))
        except Exception as exc:  # the watch gave up: say so on the page rather than hang
            log.exception("%s: following the registry failed", self.store.url)
            self.feed.publish({**self.feed.value, "stale": True, "error": str(exc)})

    def records(self) -> list[ServiceRecord]:
        """This host's instances as the map's service labels (their pids mean something
        only in this pid namespace)."""
        if self.view is None or self.view.instances is None:
            return []
        return [ServiceRecord(i.service, i.urls, (i.pid,) if self.here.same_pids(i.host)
                              else ()) for i in self.view.instances]

    async def stop(self, *, close_store: bool = True) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if close_store:
            await self.store.close()
