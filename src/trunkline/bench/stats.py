"""Latency summaries from per-round-trip samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Latency:
    """Round-trip times of one timed run (microseconds) and its throughput."""

    rounds: int
    p50_us: float
    p99_us: float
    mean_us: float
    rate: float  # round trips per second over the whole timed run

    @classmethod
    def from_samples(cls, samples_ns: Sequence[int], elapsed_ns: int) -> Latency:
        ordered = sorted(samples_ns)
        n = len(ordered)
        if n == 0:
            raise ValueError("no samples")
        return cls(rounds=n,
                   p50_us=ordered[n // 2] / 1000,
                   p99_us=ordered[min(n - 1, (n * 99) // 100)] / 1000,
                   mean_us=sum(ordered) / n / 1000,
                   rate=n * 1e9 / elapsed_ns if elapsed_ns > 0 else 0.0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Latency:
        return cls(rounds=int(data["rounds"]), p50_us=float(data["p50_us"]),
                   p99_us=float(data["p99_us"]), mean_us=float(data["mean_us"]),
                   rate=float(data["rate"]))
