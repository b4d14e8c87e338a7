"""The record of one running instance of a service, and the rules it is checked against.

An instance is registered with every address it actually bound (port 0 already replaced by
the real port; a wildcard like ``tcp://0.0.0.0:8000`` replaced by one URL per interface
address), the protocol it speaks, its process and host identity, when it started, free-form
metadata and a TTL: a record not refreshed within its TTL is dead.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..address import (
    EXAMPLES,
    Address,
    FdAddress,
    ServiceAddress,
    TcpAddress,
    UdpAddress,
    check_service_name,
    parse_address,
)
from ..errors import AddressError, InvalidRecordError
from .hostid import HostIdentity, process_start_ticks
from .interfaces import expand_urls

Protocol = Literal["raw", "http", "websocket"]
PROTOCOLS: tuple[Protocol, ...] = ("raw", "http", "websocket")
DEFAULT_TTL = 10.0
#: etcd grants whole seconds and refuses leases much shorter than its election timeout
MIN_TTL = 2.0
MAX_TTL = 86400.0
_INSTANCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_META_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
#: record format version, stored in every record; readers skip records of a newer one
RECORD_VERSION = 1


@dataclass(frozen=True)
class Instance:
    """One running instance of a service, as registered."""

    service: str
    id: str
    urls: tuple[str, ...]
    protocol: Protocol
    pid: int
    host: HostIdentity
    started: float  # wall-clock seconds (time.time()) when the instance was made
    meta: Mapping[str, str] = field(default_factory=dict)
    ttl: float = DEFAULT_TTL
    pid_start: int | None = None  # the process's start (ticks after boot): tells pid reuse
    expires: float = 0.0  # wall clock when the record dies unrefreshed; 0 when unknown (etcd)

    def __hash__(self) -> int:
        return hash((self.service, self.id))

    @property
    def key(self) -> tuple[str, str]:
        return (self.service, self.id)

    @property
    def addresses(self) -> list[Address]:
        return [parse_address(url) for url in self.urls]

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.started

    def to_dict(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "service": self.service, "id": self.id,
                "urls": list(self.urls), "protocol": self.protocol, "pid": self.pid,
                "pid_start": self.pid_start, "host": self.host.to_dict(),
                "started": self.started, "meta": dict(self.meta), "ttl": self.ttl}

    def to_json(self, **extra: Any) -> str:
        """The stored form (``extra``: store bookkeeping such as the owner token)."""
        return json.dumps({**self.to_dict(), **extra}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, expires: float = 0.0) -> Instance:
        """Rebuild a stored record; ``ValueError`` when it is not one this version reads."""
        try:
            if int(data.get("version", 1)) > RECORD_VERSION:
                raise ValueError(f"record version {data['version']} is newer than this "
                                 f"trunkline's {RECORD_VERSION}")
            urls = tuple(str(u) for u in data["urls"])
            for url in urls:
                parse_address(url)
            protocol = str(data["protocol"])
            if protocol not in PROTOCOLS:
                raise ValueError(f"unknown protocol {protocol!r}")
            pid_start = data.get("pid_start")
            return cls(check_service_name(str(data["service"])), str(data["id"]), urls,
                       protocol, int(data["pid"]),
                       HostIdentity.from_dict(data["host"]), float(data["started"]),
                       {str(k): str(v) for k, v in dict(data.get("meta") or {}).items()},
                       float(data["ttl"]), None if pid_start is None else int(pid_start),
                       expires)
        except (KeyError, TypeError, AttributeError, AddressError) as exc:
            raise ValueError(f"not an instance record: {exc!r}") from exc

    @classmethod
    def from_json(cls, text: str | bytes, *, expires: float = 0.0) -> tuple[Instance, str]:
        """A stored record and its owner token ('' when it has none)."""
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return cls.from_dict(data, expires=expires), str(data.get("owner", ""))

    def with_expiry(self, expires: float) -> Instance:
        return replace(self, expires=expires)


def new_instance_id(host: HostIdentity | None = None, pid: int | None = None) -> str:
    """``hostname-pid-random``: unique enough, and says where the instance runs."""
    hostname = (host or HostIdentity.current()).hostname.split(".", 1)[0]
    hostname = re.sub(r"[^A-Za-z0-9._-]", "-", hostname)[:40] or "host"
    return f"{hostname}-{os.getpid() if pid is None else pid}-{secrets.token_hex(3)}"


def check_protocol(protocol: str) -> Protocol:
    if protocol not in PROTOCOLS:
        raise InvalidRecordError(f"protocol {protocol!r} is not one of "
                                 f"{', '.join(PROTOCOLS)} (example: protocol='http')")
    return protocol


def check_ttl(ttl: float) -> float:
    if (isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl)
            or not MIN_TTL <= ttl <= MAX_TTL):
        raise InvalidRecordError(f"ttl {ttl!r} must be a number of seconds from {MIN_TTL:g} to "
                                 f"{MAX_TTL:g} (default {DEFAULT_TTL:g}; example: ttl=10)")
    return float(ttl)


def check_meta(meta: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (meta or {}).items():
        if not isinstance(key, str) or not _META_KEY.match(key):
            raise InvalidRecordError(f"metadata key {key!r} must be 1-63 of letters, digits, "
                                     "'.', '_', '/', '-' (example: meta={'version': '1.2'})")
        if not isinstance(value, str) or len(value) > 1024:
            raise InvalidRecordError(f"metadata value of {key!r} must be a string of at most "
                                     "1024 characters (example: meta={'version': '1.2'})")
        out[key] = value
    return out


def check_instance_id(instance_id: str) -> str:
    if not isinstance(instance_id, str) or not _INSTANCE_ID.match(instance_id):
        raise InvalidRecordError(f"instance id {instance_id!r} must be 1-128 of letters, digits,"
                                 " '.', '_', ':', '-' and start with a letter or digit "
                                 "(example: users-1)")
    return instance_id


def registrable(url: str | Address) -> Address:
    """An address others can dial, or ``AddressError`` saying why not."""
    address = parse_address(url) if isinstance(url, str) else url
    text = url if isinstance(url, str) else repr(url)
    if isinstance(address, ServiceAddress):
        raise AddressError(text, "svc:// address", "is a name, not a socket: register the "
                           "addresses the service is bound to", EXAMPLES["tcp"])
    if isinstance(address, FdAddress):
        raise AddressError(text, "fd:// address", "means nothing to another process: register "
                           "the address the inherited socket is bound to", EXAMPLES["unix"])
    if isinstance(address, TcpAddress | UdpAddress) and address.port == 0:
        raise AddressError(text, "port 0", "is not a bound port: register the port the server "
                           "actually bound (the server prints it)", EXAMPLES["tcp"])
    return address


def make_instance(service: str, urls: Iterable[str | Address], *, protocol: str = "raw",
                  meta: Mapping[str, str] | None = None, ttl: float = DEFAULT_TTL,
                  instance_id: str | None = None, host: HostIdentity | None = None,
                  pid: int | None = None) -> Instance:
    """A checked record for this process (or ``pid``): every rule above is applied here, so a
    bad name, URL, protocol, ttl or metadata is refused before anything is stored."""
    check_service_name(service)
    addresses = [registrable(url) for url in urls]
    if not addresses:
        raise InvalidRecordError(f"service {service!r}: no address to register (example: "
                                 "urls=['unix:///run/users.sock', 'tcp://0.0.0.0:8000'])")
    host = host or HostIdentity.current()
    pid = os.getpid() if pid is None else pid
    return Instance(service, check_instance_id(instance_id or new_instance_id(host, pid)),
                    tuple(expand_urls(addresses)), check_protocol(protocol), pid, host,
                    time.time(), check_meta(meta), check_ttl(ttl), process_start_ticks(pid))
