"""The tour's results: plain values the CLI renders (rich) or dumps (``--json``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..address import FifoIdentity, Identity, PeerCredentials, SocketIdentity, UnixIdentity
from ..trace.events import TraceEvent


def identity_dict(identity: Identity | None) -> dict[str, Any] | None:
    """An identity as JSON: its fields plus ``kind`` and the text form."""
    if identity is None:
        return None
    kind = {SocketIdentity: "ip", UnixIdentity: "unix", FifoIdentity: "fifo"}.get(
        type(identity), type(identity).__name__)
    return {"kind": kind, **dataclasses.asdict(identity), "text": str(identity)}


def describe_credentials(creds: PeerCredentials | None) -> str | None:
    if creds is None:
        return None
    pid = f"pid {creds.pid} " if creds.pid is not None else ""
    return f"{pid}uid {creds.uid} gid {creds.gid}"


@dataclass(frozen=True)
class StepTiming:
    """One step of a leg's connection: what happened, on which side, and how long it took."""

    step: str
    side: str
    duration_ns: int
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_event(cls, event: TraceEvent) -> StepTiming:
        return cls(event.step.value, event.side, event.duration_ns, dict(event.detail))

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "side": self.side, "duration_ns": self.duration_ns,
                "detail": _jsonable(self.detail)}


@dataclass(frozen=True)
class Latency:
    """Round-trip times of ``rounds`` messages of ``size`` bytes, in nanoseconds."""

    rounds: int
    size: int
    p50_ns: int
    p99_ns: int
    min_ns: int
    max_ns: int
    mean_ns: int

    @classmethod
    def from_samples(cls, samples: Sequence[int], size: int) -> Latency | None:
        if not samples:
            return None
        ordered = sorted(samples)
        return cls(len(ordered), size, percentile(ordered, 50), percentile(ordered, 99),
                   ordered[0], ordered[-1], sum(ordered) // len(ordered))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def percentile(ordered: Sequence[int], p: float) -> int:
    """Nearest-rank percentile of an ascending sequence."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class LegResult:
    """What one leg of the tour found."""

    name: str  # the --only key, e.g. "tcp"
    title: str  # e.g. "TCP loopback"
    kind: str  # "stream" or "datagram" (or what a later leg says it is)
    server_url: str = ""  # the address the service listened on
    client_url: str = ""  # the address the client asked for (a name, where one is used)
    client_local: Identity | None = None
    client_peer: Identity | None = None
    server_local: Identity | None = None
    server_peer: Identity | None = None
    peer_process: PeerCredentials | None = None  # the client process, as the server saw it
    steps: list[StepTiming] = field(default_factory=list)
    latency: Latency | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def step_ns(self, step: str, side: str = "client") -> int | None:
        """Total time of ``side``'s events of ``step`` (e.g. a connect tried on two families)."""
        found = [s.duration_ns for s in self.steps if s.step == step and s.side == side]
        return sum(found) if found else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "kind": self.kind, "ok": self.ok,
            "server_url": self.server_url, "client_url": self.client_url,
            "client": {"local": identity_dict(self.client_local),
                       "peer": identity_dict(self.client_peer)},
            "server": {"local": identity_dict(self.server_local),
                       "peer": identity_dict(self.server_peer),
                       "peer_process": (dataclasses.asdict(self.peer_process)
                                        if self.peer_process else None)},
            "steps": [s.to_dict() for s in self.steps],
            "latency": self.latency.to_dict() if self.latency else None,
            "notes": self.notes, "error": self.error,
        }


@dataclass(frozen=True)
class Cleanup:
    """What the tour left behind (nothing, when all went well)."""

    tmpdir: str
    leftovers: list[str]  # files still in the temp dir after every service closed
    tmpdir_removed: bool
    abstract_left: list[str]  # abstract socket names still bound after closing

    @property
    def ok(self) -> bool:
        return not self.leftovers and self.tmpdir_removed and not self.abstract_left

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ok": self.ok}


@dataclass
class TourResult:
    legs: list[LegResult]
    rounds: int
    size: int
    loop: str  # "uvloop" or "asyncio"
    host: dict[str, str]  # python, kernel, machine
    cleanup: Cleanup | None = None
    error: str | None = None  # the tour as a whole could not run

    @property
    def ok(self) -> bool:
        return (self.error is None and all(leg.ok for leg in self.legs)
                and self.cleanup is not None and self.cleanup.ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "rounds": self.rounds, "message_bytes": self.size,
            "loop": self.loop, "host": self.host, "error": self.error,
            "legs": [leg.to_dict() for leg in self.legs],
            "cleanup": self.cleanup.to_dict() if self.cleanup else None,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
