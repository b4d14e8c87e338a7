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
    #: p50 of each block of round trips (the client alternates servers block by block): how
    #: much the median moved during the run, for the plots' whiskers
    block_p50_us: tuple[float, ...] = ()

    @classmethod
    def from_samples(cls, samples_ns: Sequence[int], elapsed_ns: int,
                     blocks: Sequence[int] = ()) -> Latency:
        """``blocks``: how many samples each block contributed, in order (none: one block)."""
        ordered = sorted(samples_ns)
        n = len(ordered)
        if n == 0:
            raise ValueError("no samples")
        block_p50: list[float] = []
        start = 0
        for size in blocks:
            block = sorted(samples_ns[start:start + size])
            start += size
            if block:
                block_p50.append(block[len(block) // 2] / 1000)
        return cls(rounds=n,
                   p50_us=ordered[n // 2] / 1000,
                   p99_us=ordered[min(n - 1, (n * 99) // 100)] / 1000,
                   mean_us=sum(ordered) / n / 1000,
                   rate=n * 1e9 / elapsed_ns if elapsed_ns > 0 else 0.0,
                   block_p50_us=tuple(block_p50))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["block_p50_us"] = list(self.block_p50_us)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Latency:
        return cls(rounds=int(data["rounds"]), p50_us=float(data["p50_us"]),
                   p99_us=float(data["p99_us"]), mean_us=float(data["mean_us"]),
                   rate=float(data["rate"]),
                   block_p50_us=tuple(float(v) for v in data.get("block_p50_us", ())))
