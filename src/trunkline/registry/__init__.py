"""Services by name: instance records, two stores (SQLite file, etcd) and the caller's
ranking of an instance's addresses by where the caller stands.

    from trunkline.registry import open_registry, register, Resolver

    async with register("users", server.urls, protocol="http"):        # the service
        ...
    async with Resolver(open_registry(), owns_store=True) as resolver:  # a caller
        best = (await resolver.resolve("users")).best                  # .url, .reason

The registry is picked by ``open_registry(url)``: ``sqlite:///path``,
``etcd://host:2379[,host:2379...]``, else ``$TRUNKLINE_REGISTRY``, else the user's SQLite
file (``$XDG_RUNTIME_DIR/trunkline/registry.db``).
"""

from __future__ import annotations

from .hook import registration_hook
from .hostid import HostIdentity, process_alive
from .model import DEFAULT_TTL, PROTOCOLS, Instance, Protocol, make_instance
from .ranking import KINDS, Candidate, Resolution, Skipped, rank
from .registration import Registration, register
from .resolver import Resolver
from .store import RegistryView, Store
from .url import (
    ENV_VAR,
    RegistryURL,
    default_registry_path,
    open_registry,
    parse_registry_url,
    registry_url,
)

__all__ = [
    "DEFAULT_TTL", "ENV_VAR", "KINDS", "PROTOCOLS", "Candidate", "HostIdentity", "Instance",
    "Protocol", "Registration", "RegistryURL", "RegistryView", "Resolution", "Resolver",
    "Skipped", "Store", "default_registry_path", "make_instance", "open_registry",
    "parse_registry_url", "process_alive", "rank", "register", "registration_hook",
    "registry_url",
]
