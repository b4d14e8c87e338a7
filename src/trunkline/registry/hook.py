"""``serve --name``: a service host hook that registers what the host bound.

    hook = registration_hook("users", protocol="http", meta={"version": "1.2"})
    server = AppServer(app, "unix:@users", "tcp://0.0.0.0:0", hooks=[hook])

The hook is entered by the host after every address is bound, so the instance is registered
with the real addresses (port 0 resolved, wildcards expanded to the interface addresses),
and left when stopping begins, before the listeners close: a clean stop deregisters before
the sockets go. The name, protocol, TTL and metadata are checked when the hook is made, so
a bad ``--name`` is refused before anything is bound.

A registry that cannot be reached when the host starts does not stop the service: it
serves, and the registration keeps trying (and registers when the registry answers). A
registry that answers with a refusal (a damaged file, a duplicate instance id) does stop
the start: that will not go away by waiting.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ..address import (
    SocketIdentity,
    TcpAddress,
    UdpAddress,
    UnixAddress,
    UnixIdentity,
    check_service_name,
    format_address,
)
from .model import DEFAULT_TTL, check_meta, check_protocol, check_ttl, make_instance
from .registration import Registration
from .store import Store
from .url import open_registry

log = logging.getLogger("trunkline.registry")


class BoundHost(Protocol):
    """What the hook needs of a ``ServiceHost``: its bound URLs (and, for inherited
    ``fd://`` sockets, its listeners' ``local`` identities: what the socket is bound to)."""

    @property
    def urls(self) -> list[str]: ...


def dialable_urls(host: BoundHost) -> list[str]:
    """The host's URLs, an inherited ``fd://N`` replaced by the address the socket is bound
    to (``fd://3`` means nothing to another process)."""
    urls = list(host.urls)
    for i, listener in enumerate(getattr(host, "listeners", ())):
        local = getattr(listener, "local", None)
        if i < len(urls) and urls[i].startswith("fd://") and local is not None:
            if isinstance(local, SocketIdentity):
                urls[i] = format_address(
                    (UdpAddress if local.protocol == "udp" else TcpAddress)(local.ip,
                                                                            local.port))
            elif isinstance(local, UnixIdentity) and local.path:
                urls[i] = format_address(UnixAddress(local.path, abstract=local.abstract,
                                                     datagram=local.datagram))
    return urls


RegistrationHook = Callable[[BoundHost], AbstractAsyncContextManager[Registration]]


def registration_hook(name: str, *, protocol: str = "raw",
                      meta: Mapping[str, str] | None = None, ttl: float = DEFAULT_TTL,
                      registry: str | Store | None = None, instance_id: str | None = None,
                      on_registered: Callable[[Registration], None] | None = None
                      ) -> RegistrationHook:
    """A host hook keeping one instance of ``name`` registered with the host's bound
    addresses while it serves (see the module docstring). ``on_registered`` is called with
    the registration once it is entered (the CLI prints the instance id)."""
    check_service_name(name)
    check_protocol(protocol)
    checked_meta = check_meta(meta)
    check_ttl(ttl)

    @contextlib.asynccontextmanager
    async def hook(host: BoundHost) -> AsyncIterator[Registration]:
        instance = make_instance(name, dialable_urls(host), protocol=protocol, meta=checked_meta,
                                 ttl=ttl, instance_id=instance_id)
        if isinstance(registry, Store):
            registration = Registration(instance, registry)
        else:
            registration = Registration(instance, open_registry(registry), owns_store=True)
        await registration.start(required=False)
        if not registration.registered:
            log.warning("%s; serving anyway, registering %s when the registry answers",
                        registration.last_error, name)
        if on_registered is not None:
            on_registered(registration)
        try:
            yield registration
        finally:
            await registration.stop()

    return hook


__all__ = ["BoundHost", "RegistrationHook", "dialable_urls", "registration_hook"]
