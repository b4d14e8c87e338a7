"""Datagram health as iperf3 -u reports it: what a receiver counts from the datagrams it got.

Every datagram starts with a 16-byte header: its sequence number (0, 1, 2, ...) and the
sender's CLOCK_MONOTONIC time in nanoseconds when it was sent (one clock for every process on
the machine, in every network namespace). The receiver counts, in arrival order:

- received: every datagram that arrived, duplicates included;
- duplicated: arrivals of a sequence number already seen;
- unique = received - duplicated; lost = sent - unique (the sender says how many it sent,
  so a loss at the end of the run counts too, where iperf3 only sees gaps);
- reordered: unique arrivals with a sequence number below the highest seen before them
  (iperf3's "out-of-order");
- jitter: RFC 3550's interarrival jitter (section 6.4.1, code in appendix A.8): for each
  arrival i after the first, D = (R_i - R_(i-1)) - (S_i - S_(i-1)) = transit_i - transit_(i-1),
  with R the arrival and S the send time, and J += (|D| - J) / 16. Arrival order, not sequence
  order, as the RFC says; duplicates are arrivals too.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from typing import Any

HEADER = struct.Struct("!QQ")  # sequence number, send time (CLOCK_MONOTONIC, ns)
MAX_SEQUENCE = 1 << 31  # the bitmap of seen numbers grows to the highest one


@dataclass(frozen=True)
class DatagramHealth:
    """One run's figures (the JSON a receiver reports, with the sender's count merged in)."""

    sent: int
    received: int
    unique: int
    lost: int
    duplicated: int
    reordered: int
    jitter_us: float  # RFC 3550 interarrival jitter at the end of the run, microseconds
    bytes: int  # unique datagrams' bytes
    seconds: float  # first to last arrival
    send_seconds: float  # first to last send
    queue_dropped: int = 0  # dropped by the receiving endpoint's own queue (trunkline)

    @property
    def lost_percent(self) -> float:
        return 100.0 * self.lost / self.sent if self.sent else 0.0

    @property
    def mbit_per_s(self) -> float:
        """Payload bits delivered (unique datagrams) per second, over the sender's time."""
        return self.bytes * 8 / 1e6 / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def sent_per_s(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "lost_percent": self.lost_percent,
                "mbit_per_s": self.mbit_per_s, "sent_per_s": self.sent_per_s}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatagramHealth:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


class HealthCounter:
    """Receiver-side accounting; ``add`` once per arriving datagram."""

    def __init__(self) -> None:
        self.seen = bytearray()  # one byte per sequence number: arrived yet?
        self.received = 0
        self.duplicated = 0
        self.reordered = 0
        self.highest = -1
        self.jitter_ns = 0.0
        self.last_transit: int | None = None
        self.bytes = 0
        self.first_ns = 0
        self.last_ns = 0
        self.first_sent_ns = 0
        self.last_sent_ns = 0

    def add_datagram(self, data: bytes | memoryview, arrival_ns: int) -> None:
        """Account one datagram (its header) that arrived at ``arrival_ns``."""
        if len(data) < HEADER.size:
            return  # not ours: too short to carry the header
        seq, sent_ns = HEADER.unpack_from(data)
        if seq < MAX_SEQUENCE:  # anything above cannot come from a bench sender
            self.add(seq, sent_ns, arrival_ns, len(data))

    def add(self, seq: int, sent_ns: int, arrival_ns: int, size: int) -> None:
        if self.received == 0:
            self.first_ns = arrival_ns
        self.received += 1
        self.last_ns = arrival_ns
        transit = arrival_ns - sent_ns
        if self.last_transit is not None:
            self.jitter_ns += (abs(transit - self.last_transit) - self.jitter_ns) / 16
        self.last_transit = transit
        seen = self.seen
        if seq >= len(seen):
            seen.extend(bytes(max(seq + 1 - len(seen), len(seen), 1024)))
        if seen[seq]:
            self.duplicated += 1
            return
        seen[seq] = 1
        self.bytes += size
        if seq < self.highest:
            self.reordered += 1
        else:
            self.highest = seq
        if self.first_sent_ns == 0 or sent_ns < self.first_sent_ns:
            self.first_sent_ns = sent_ns
        self.last_sent_ns = max(self.last_sent_ns, sent_ns)

    @property
    def unique(self) -> int:
        return self.received - self.duplicated

    def result(self, sent: int, send_seconds: float, queue_dropped: int = 0) -> DatagramHealth:
        return DatagramHealth(
            sent=sent, received=self.received, unique=self.unique,
            lost=max(0, sent - self.unique), duplicated=self.duplicated,
            reordered=self.reordered, jitter_us=self.jitter_ns / 1000, bytes=self.bytes,
            seconds=(self.last_ns - self.first_ns) / 1e9, send_seconds=send_seconds,
            queue_dropped=queue_dropped)


def parse_rate(text: str) -> tuple[float, str]:
    """``--rate``: ``100M`` / ``1.5G`` / ``800K`` / ``1000000`` bits per second of payload (as
    iperf3 counts: decimal units), ``10000pps`` datagrams per second, or ``max`` (as fast as
    the sender can). Returns (value, unit) with unit ``bps``, ``pps`` or ``max``."""
    value = text.strip().lower()
    if value in ("max", "0"):
        return 0.0, "max"
    unit = "bps"
    if value.endswith("pps"):
        value, unit = value[:-3], "pps"
    elif value.endswith(("bps", "bit", "b")):
        value = value.removesuffix("bps").removesuffix("bit").removesuffix("b")
    scale = {"k": 1e3, "m": 1e6, "g": 1e9}
    factor = scale.get(value[-1:], 1.0)
    number = value[:-1] if value[-1:] in scale else value
    try:
        rate = float(number) * factor
    except ValueError:
        raise ValueError(f"bad rate {text!r}: use bits per second (100M, 1G, 500K), "
                         "datagrams per second (10000pps) or max") from None
    if rate <= 0:
        raise ValueError(f"bad rate {text!r}: must be more than 0 (or max)")
    return rate, unit


def datagrams_per_second(rate: float, unit: str, size: int) -> float:
    """The sending pace for ``--rate`` and ``--size`` (0: as fast as possible)."""
    if unit == "max":
        return 0.0
    return rate if unit == "pps" else rate / (size * 8)


__all__ = ["HEADER", "DatagramHealth", "HealthCounter", "datagrams_per_second", "parse_rate"]
