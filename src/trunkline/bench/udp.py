"""Datagram health at a chosen rate and size, as iperf3 -u reports it: raw vs trunkline.

Per kind (``udp`` over 127.0.0.1, ``unixgram`` over a socket path, ``netns``: UDP between two
network namespaces over a veth pair) and per implementation (``udp_peers``: raw asyncio
Protocols, or trunkline's datagram endpoints at both ends), a receiver process pinned to CPU 0
and a sender process pinned to CPU 1 run for ``seconds``; the sender paces itself to ``rate``.
When the sender is done it says how many it sent, the receiver takes what is still in flight
and reports its counts (``udp_stats``: lost, reordered, duplicated, RFC 3550 jitter).

Rounds interleave the implementations. A datagram larger than the path takes is an error of
the run (EMSGSIZE: ``DatagramTooLargeError`` in trunkline), never a silent drop: with
``dont_fragment`` the path MTU is the limit (as iperf3 --dont-fragment), else the socket
kind's (65,507 bytes of UDP payload over IPv4).
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import statistics
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from .netns import VethPair, netns_unavailable, veth_pair
from .process import BenchError, Worker, read_json_line, run_worker
from .udp_stats import HEADER, DatagramHealth, datagrams_per_second, parse_rate

KINDS: dict[str, str] = {
    "udp": "UDP over 127.0.0.1",
    "unixgram": "Unix datagram socket, path",
    "netns": "UDP between two network namespaces over a veth pair",
}
IMPLS = ("raw", "trunkline")
RECEIVER_CPU, SENDER_CPU = 0, 1
DEFAULT_SIZE = 1460  # iperf3's default UDP length; fits a 1500-byte MTU unfragmented
UDP_IP_OVERHEAD = 28  # IPv4 header 20 + UDP header 8

Progress = Callable[[int, int, str], None]
#: Test hook: given (kind, receiver URL), a context that yields the URL the sender should use
#: (e.g. a relay that drops, reorders or duplicates on purpose).
Via = Callable[[str, str], AbstractContextManager[str]]


class DatagramTooLargeForPathError(BenchError):
    """``size`` does not fit the path (EMSGSIZE from the sender's very first datagram)."""


@dataclass
class UdpBenchResult:
    kinds: list[str]
    impls: list[str]
    size: int
    rate: str  # as given, e.g. "100M", "10000pps", "max"
    pps: float  # the pace that means (0: as fast as possible)
    seconds: float
    rounds: int
    dont_fragment: bool
    runs: dict[tuple[str, str], list[DatagramHealth]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def values(self, kind: str, impl: str, measure: Callable[[DatagramHealth], float]
               ) -> list[float]:
        return [measure(run) for run in self.runs.get((kind, impl), [])]

    def median(self, kind: str, impl: str, measure: Callable[[DatagramHealth], float]
               ) -> float | None:
        values = self.values(kind, impl, measure)
        return statistics.median(values) if values else None

    def total(self, kind: str, impl: str, name: str) -> int:
        return sum(int(getattr(run, name)) for run in self.runs.get((kind, impl), []))

    def to_json(self) -> dict[str, Any]:
        cells = []
        for kind in self.kinds:
            for impl in self.impls:
                runs = self.runs.get((kind, impl), [])
                cells.append({
                    "kind": kind, "impl": impl, "rounds": [r.to_json() for r in runs],
                    **{name: self.total(kind, impl, name) for name in (
                        "sent", "received", "unique", "lost", "duplicated", "reordered",
                        "queue_dropped")},
                    "median_mbit_per_s": self.median(kind, impl, _mbit),
                    "median_lost_percent": self.median(kind, impl, _lost),
                    "median_jitter_us": self.median(kind, impl, _jitter),
                    "error": self.errors.get(f"{kind}/{impl}")})
        return {"size": self.size, "rate": self.rate, "pps": self.pps,
                "seconds": self.seconds, "rounds": self.rounds,
                "dont_fragment": self.dont_fragment, "cells": cells, "errors": self.errors}


def _mbit(run: DatagramHealth) -> float:
    return run.mbit_per_s


def _lost(run: DatagramHealth) -> float:
    return run.lost_percent


def _jitter(run: DatagramHealth) -> float:
    return run.jitter_us


MEASURES: dict[str, Callable[[DatagramHealth], float]] = {
    "mbit_per_s": _mbit, "lost_percent": _lost, "jitter_us": _jitter}

_names = itertools.count()


def run_udp_bench(kinds: Sequence[str] = ("udp", "unixgram"), impls: Sequence[str] = IMPLS,
                  *, rate: str = "100M", size: int = DEFAULT_SIZE, seconds: float = 2.0,
                  rounds: int = 3, dont_fragment: bool = False,
                  progress: Progress | None = None, via: Via | None = None) -> UdpBenchResult:
    """Measure every kind x implementation, ``rounds`` interleaved rounds."""
    for kind in kinds:
        if kind not in KINDS:
            raise BenchError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    for impl in impls:
        if impl not in IMPLS:
            raise BenchError(f"unknown implementation {impl!r}; choose from raw, trunkline")
    if size < HEADER.size:
        raise BenchError(f"--size {size} is too small: each datagram carries a {HEADER.size}-"
                         "byte header (sequence number and send time)")
    try:
        value, unit = parse_rate(rate)
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    pps = datagrams_per_second(value, unit, size)
    if "netns" in kinds and (why := netns_unavailable()) is not None:
        raise BenchError(why)
    result = UdpBenchResult(list(kinds), list(impls), size, rate, pps, seconds, rounds,
                            dont_fragment)
    total, done = rounds * len(kinds) * len(impls), 0
    workdir = tempfile.mkdtemp(prefix="tlu-", dir="/tmp")  # short: sun_path has 107 bytes
    try:
        with _maybe_veth("netns" in kinds) as pair:
            for round_no in range(rounds):
                turn = list(impls) if round_no % 2 == 0 else list(reversed(impls))
                for kind in kinds:
                    for impl in turn:
                        if progress is not None:
                            progress(done, total, f"round {round_no + 1}: {impl} {kind}")
                        done += 1
                        try:
                            run = measure_once(kind, impl, size=size, pps=pps,
                                               seconds=seconds, dont_fragment=dont_fragment,
                                               workdir=workdir, pair=pair, via=via)
                        except DatagramTooLargeForPathError:
                            raise
                        except BenchError as exc:
                            result.errors[f"{kind}/{impl}"] = str(exc)
                            continue
                        result.runs.setdefault((kind, impl), []).append(run)
        if progress is not None:
            progress(total, total, "done")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


@contextlib.contextmanager
def _maybe_veth(wanted: bool) -> Iterator[VethPair | None]:
    if not wanted:
        yield None
        return
    with veth_pair() as pair:
        yield pair


def measure_once(kind: str, impl: str, *, size: int, pps: float, seconds: float,
                 dont_fragment: bool, workdir: str, pair: VethPair | None = None,
                 via: Via | None = None) -> DatagramHealth:
    """One run: a receiver, a sender, the receiver's counts."""
    name = f"{impl}{next(_names)}"
    recv_prefix: list[str] = []
    send_prefix: list[str] = []
    if kind == "udp":
        url = "udp://127.0.0.1:0"
    elif kind == "unixgram":
        url = f"unixgram://{workdir}/{name}.sock"
    else:
        assert pair is not None
        url = f"udp://{pair.address_b}:0"
        recv_prefix, send_prefix = pair.run_in_b, pair.run_in_a
    with Worker(["udprecv", "--impl", impl, "--url", url], cpu=RECEIVER_CPU,
                prefix=recv_prefix) as receiver:
        bound = receiver.wait_ready()
        with (via(kind, bound) if via is not None else contextlib.nullcontext(bound)) as target:
            args = ["udpsend", "--impl", impl, "--url", target, "--size", str(size), "--pps",
                    repr(pps), "--seconds", repr(seconds)]
            sent = run_worker(args + (["--dont-fragment"] if dont_fragment else []),
                              cpu=SENDER_CPU, timeout=seconds + 60, prefix=send_prefix,
                              allow_failure=True)
            if "error" in sent:
                raise _sender_error(kind, impl, size, sent, dont_fragment)
            assert receiver.proc.stdin is not None
            receiver.proc.stdin.write(f"END {sent['sent']} {sent['send_seconds']!r}\n".encode())
            receiver.proc.stdin.flush()
            got = read_json_line(receiver, 60)
    return DatagramHealth.from_json(got)


def _sender_error(kind: str, impl: str, size: int, report: dict[str, Any],
                  dont_fragment: bool) -> BenchError:
    if not report.get("too_large"):
        return BenchError(f"{impl} sender over {kind} failed: {report['error']}")
    message = (f"datagrams of {size} bytes do not fit the path ({KINDS[kind]}, {impl} sender): "
               f"EMSGSIZE ({report['error']})")
    mtu, limit = report.get("path_mtu"), report.get("max_size")
    if dont_fragment and mtu and kind != "unixgram":
        message += (f"; the path MTU is {mtu} bytes, so with --dont-fragment at most "
                    f"{mtu - UDP_IP_OVERHEAD} bytes of UDP payload fit one datagram. Use a "
                    "smaller --size, or leave out --dont-fragment to let IP fragment them")
    else:
        where = "this unixgram socket (its SO_SNDBUF minus 32 bytes)" if kind == "unixgram" \
            else "UDP over IPv4"
        message += (f"; {where} carries at most {limit:,} bytes per datagram" if limit else "")
        message += "; use a smaller --size"
    return DatagramTooLargeForPathError(message)


__all__ = ["DEFAULT_SIZE", "IMPLS", "KINDS", "MEASURES", "DatagramTooLargeForPathError",
           "UdpBenchResult", "measure_once", "run_udp_bench"]
