"""Service names on the map: records of (name, URLs, pids) label the sockets they match.

The service registry supplies the records (``registered_services``: every live instance
registered from this host); callers may pass records of their own instead (the CLI's
``--services-file``, tests, the dashboard).

A socket matches a record when a process of the record holds it, or its local address is one
of the record's URLs (``tcp://127.0.0.1:7000`` matches the listener and every connection it
accepted, which share its local address; ``unix:@name``, ``unix:///path``,
``unixgram:...``, ``udp://...`` and ``fifo:///path`` alike). A host that is a name rather than
an IP literal matches on the port alone, and so does a wildcard (``tcp://0.0.0.0:7000`` is the
listener and every connection it accepted on any address).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..address import FifoAddress, TcpAddress, UdpAddress, UnixAddress, parse_address
from ..errors import AddressError, TrunklineError
from .kernel import plain_ip

if TYPE_CHECKING:
    from ..registry import Instance

_WILDCARD = {"0.0.0.0", "::"}  # a service bound there is reached on every address


@dataclass(frozen=True)
class ServiceRecord:
    """One instance of a service as the map needs it: its name, bound URLs and pids."""

    name: str
    urls: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Place:
    """A URL reduced to what a socket's local address is compared with."""

    kind: str
    host: str | None  # IP literal, or None: any host (a name, or a Unix/FIFO path kind)
    port: int | None
    name: str  # Unix name ("/path", "@abstract") or FIFO path; "" for TCP/UDP


def _place(url: str) -> _Place | None:
    address = parse_address(url)
    if isinstance(address, TcpAddress | UdpAddress):
        kind = "udp" if isinstance(address, UdpAddress) else "tcp"
        try:
            host: str | None = plain_ip(str(ipaddress.ip_address(address.host)))
        except ValueError:
            host = None
        return _Place(kind, host, address.port, "")
    if isinstance(address, UnixAddress):
        name = ("@" if address.abstract else "") + address.path
        return _Place("unixgram" if address.datagram else "unix", None, None, name)
    if isinstance(address, FifoAddress):
        return _Place("fifo", None, None, address.path)
    return None  # fd://, svc://: nothing on the map to compare with


class ServiceLabels:
    """Answers "which services is this socket (or process) part of?" for a set of records."""

    def __init__(self, records: Iterable[ServiceRecord]) -> None:
        self.records = tuple(records)
        self._places: list[tuple[str, _Place]] = []
        for record in self.records:
            for url in record.urls:
                try:
                    place = _place(url)
                except AddressError as exc:
                    raise TrunklineError(f"service {record.name!r}: {exc}") from exc
                if place is not None:
                    self._places.append((record.name, place))

    @property
    def names(self) -> set[str]:
        return {r.name for r in self.records}

    def for_pid(self, pid: int) -> set[str]:
        return {r.name for r in self.records if pid in r.pids}

    def for_address(self, kind: str, local: str, ip: str | None = None,
                    port: int | None = None) -> set[str]:
        """Services bound at this local address (``ip``/``port`` for TCP and UDP)."""
        found = set()
        for name, place in self._places:
            if place.kind != kind:
                continue
            if place.port is not None:
                if port == place.port and (place.host in (None, ip) or _WILDCARD & {
                        place.host, ip}):
                    found.add(name)
            elif place.name == local:
                found.add(name)
        return found


def registered_services(registry: str | None = None) -> list[ServiceRecord]:
    """One record per live instance in ``registry`` (a URL; default ``$TRUNKLINE_REGISTRY``
    or the user's file) that runs where this map looks: its network namespace (the
    sockets the map lists) and pid namespace (its pid names a process here). Instances of
    other hosts label nothing here. Raises ``RegistryError`` when the registry cannot be
    read. Runs its own event loop: call it from synchronous code."""
    from ..registry import HostIdentity, open_registry

    async def read() -> list[Instance]:
        store = open_registry(registry)
        try:
            return await store.list()
        finally:
            await store.close()

    here = HostIdentity.current()
    records = []
    for instance in asyncio.run(read()):
        if not here.same_network(instance.host):
            continue
        pids = (instance.pid,) if here.same_pids(instance.host) else ()
        records.append(ServiceRecord(instance.service, instance.urls, pids))
    return records


def load_records(text: str, source: str) -> list[ServiceRecord]:
    """Records from JSON: a list of ``{"name": ..., "urls": [...], "pids": [...]}``."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise TrunklineError(f"{source}: not JSON ({exc}); expected a list like "
                             '[{"name": "echo", "urls": ["tcp://127.0.0.1:7000"], '
                             '"pids": [1234]}]') from exc
    if not isinstance(raw, list):
        raise TrunklineError(f"{source}: expected a JSON list of service records, "
                             f"got {type(raw).__name__}")
    records = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise TrunklineError(f"{source}: record {i} needs a \"name\" string")
        urls, pids = item.get("urls", []), item.get("pids", [])
        if not _list_of(urls, str) or not _list_of(pids, int):
            raise TrunklineError(f"{source}: record {i} ({item['name']}): \"urls\" must be a "
                                 "list of strings and \"pids\" a list of integers")
        records.append(ServiceRecord(item["name"], tuple(urls), tuple(pids)))
    return records


def _list_of(value: object, kind: type) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, kind) and not isinstance(v, bool) for v in value)
