"""``trunkline bench udp``: datagram health counted right, against a relay that drops,
reorders and duplicates on purpose; RFC 3550 jitter on a known sequence; clear errors for
datagrams the path does not take; the netns kind (root only). No timing assertions."""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.bench_plot import assert_bar, read_plot
from tests.support.cli_helpers import TRUNKLINE, run
from tests.support.second_user import as_nobody, needs_nobody_reads_tree
from trunkline.bench.udp import run_udp_bench
from trunkline.bench.udp_stats import HEADER, HealthCounter, datagrams_per_second, parse_rate

# --------------------------------------------------------------------------- counting


def rfc3550_jitter(send_times: list[int], arrival_times: list[int]) -> float:
    """RFC 3550 A.8, written out: J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16."""
    jitter = 0.0
    for i in range(1, len(send_times)):
        d = (arrival_times[i] - arrival_times[i - 1]) - (send_times[i] - send_times[i - 1])
        jitter = jitter + (abs(d) - jitter) / 16
    return jitter


def test_jitter_follows_rfc3550_on_a_known_sequence() -> None:
    sends = [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000]
    transits = [500, 700, 400, 900, 900, 300, 1500, 600]  # nanoseconds in flight
    arrivals = [s + t for s, t in zip(sends, transits, strict=True)]
    counter = HealthCounter()
    for seq, (sent, arrived) in enumerate(zip(sends, arrivals, strict=True)):
        counter.add_datagram(HEADER.pack(seq, sent) + b"x" * 10, arrived)
    expected = rfc3550_jitter(sends, arrivals)
    # by hand: |D| = 200, 300, 500, 0, 600, 1200, 900
    by_hand = 0.0
    for d in (200, 300, 500, 0, 600, 1200, 900):
        by_hand += (d - by_hand) / 16
    assert expected == pytest.approx(by_hand)
    health = counter.result(sent=8, send_seconds=7e-6)
    assert health.jitter_us == pytest.approx(expected / 1000)
    assert (health.received, health.lost, health.reordered, health.duplicated) == (8, 0, 0, 0)


def test_counting_of_losses_reorders_and_duplicates() -> None:
    counter = HealthCounter()
    for seq in (0, 1, 3, 2, 2, 5, 4, 6, 6, 6):  # 7 and 8 never come
        counter.add(seq, seq * 10, seq * 10 + 5, 100)
    health = counter.result(sent=9, send_seconds=1.0)
    assert health.received == 10 and health.unique == 7 and health.duplicated == 3
    assert health.reordered == 2  # 2 after 3, 4 after 5
    assert health.lost == 2 and health.lost_percent == pytest.approx(200 / 9)
    assert health.bytes == 700
    counter.add_datagram(b"short", 0)  # not a bench datagram: ignored
    assert counter.received == 10


def test_rates() -> None:
    assert parse_rate("100M") == (100e6, "bps")
    assert parse_rate("1.5G") == (1.5e9, "bps")
    assert parse_rate("500k") == (500e3, "bps")
    assert parse_rate("10000pps") == (10000, "pps")
    assert parse_rate("max") == (0.0, "max")
    assert datagrams_per_second(100e6, "bps", 1250) == 10_000
    assert datagrams_per_second(5000, "pps", 64) == 5000
    for bad in ("fast", "-1M", "", "10Xpps"):
        with pytest.raises(ValueError, match="bad rate"):
            parse_rate(bad)


# --------------------------------------------------------------------------- a mean relay


@dataclass
class RelayLog:
    received: int = 0
    forwarded: int = 0  # distinct datagrams passed on
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0  # held back, then passed on after the next one


@contextmanager
def mean_relay(target: str, workdir: Path) -> Iterator[tuple[str, RelayLog]]:
    """A unixgram relay to ``target`` (a unixgram:// URL): of every 10 datagrams it drops the
    4th, sends the 6th twice and holds the 8th back until the 9th has gone. Unix datagram
    sockets block instead of dropping, so what the receiver gets is exactly what this did."""
    log = RelayLog()
    path = str(workdir / "relay.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.05)
    out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    out.connect(target.removeprefix("unixgram://"))
    stop = threading.Event()

    def relay() -> None:
        held: bytes | None = None
        while not stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            slot = log.received % 10
            log.received += 1
            if slot == 3:
                log.dropped += 1
                continue
            if slot == 7:
                held = data
                continue
            out.send(data)
            log.forwarded += 1
            if slot == 5:
                out.send(data)
                log.duplicated += 1
            if held is not None:
                out.send(held)
                log.forwarded += 1
                log.reordered += 1
                held = None
        if held is not None:  # the run ended before the next one: never forwarded
            log.dropped += 1

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        yield f"unixgram://{path}", log
    finally:
        stop.set()
        thread.join(5)
        sock.close()
        out.close()


@pytest.mark.parametrize("impl", ["raw", "trunkline"])
def test_counts_match_what_a_mean_relay_did(impl: str, short_tmp: Path) -> None:
    logs: list[RelayLog] = []

    @contextmanager
    def via(kind: str, receiver: str) -> Iterator[str]:
        assert kind == "unixgram"
        with mean_relay(receiver, short_tmp) as (url, log):
            logs.append(log)
            yield url

    result = run_udp_bench(["unixgram"], [impl], rate="4000pps", size=200, seconds=0.3,
                           rounds=1, via=via)
    assert result.errors == {}
    [health] = result.runs[("unixgram", impl)]
    [log] = logs
    assert log.received == health.sent > 100
    assert health.duplicated == log.duplicated > 0
    assert health.reordered == log.reordered > 0
    assert health.lost == log.dropped > 0
    assert health.unique == log.forwarded == health.sent - log.dropped
    assert health.received == log.forwarded + log.duplicated
    assert health.queue_dropped == 0


# --------------------------------------------------------------------------- the command


@pytest.mark.timeout(90)
def test_cli_udp_and_unixgram_json_and_plot(tmp_path: Path) -> None:
    plot = tmp_path / "udp.png"
    done = run(["bench", "udp", "--rate", "2000pps", "--size", "64", "--seconds", "0.2",
                "--rounds", "2", "--json", "--plot", str(plot)], timeout=80)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["pps"] == 2000 and report["size"] == 64
    cells = {(c["kind"], c["impl"]): c for c in report["cells"]}
    assert set(cells) == {(k, i) for k in ("udp", "unixgram") for i in ("raw", "trunkline")}
    for (kind, _), cell in cells.items():
        assert cell["error"] is None and len(cell["rounds"]) == 2, cell
        assert cell["sent"] == sum(r["sent"] for r in cell["rounds"]) > 0
        assert cell["lost"] == cell["sent"] - cell["unique"]
        assert cell["duplicated"] == 0 and cell["reordered"] == 0  # nothing between them
        if kind == "unixgram":  # no drops: the sender waits when the receiver's queue fills
            assert cell["lost"] == 0
    figure = read_plot(plot)
    assert [p["ylabel"] for p in figure["panels"]] == ["Mbit/s", "% of sent", "microseconds"]
    for panel, name in enumerate(("mbit_per_s", "lost_percent", "jitter_us")):
        for (kind, impl), cell in cells.items():
            values = [r[name] for r in cell["rounds"]]
            assert_bar(figure, panel, kind, impl, statistics.median(values), values)


def test_cli_datagrams_too_large_for_the_path() -> None:
    done = run(["bench", "udp", "--kinds", "udp", "--size", "70000", "--seconds", "0.1",
                "--rounds", "1"], timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "datagrams of 70000 bytes do not fit the path" in err and "EMSGSIZE" in err
    assert "at most 65,507 bytes per datagram" in err and "use a smaller --size" in err
    done = run(["bench", "udp", "--size", "8"])
    assert done.returncode == 2 and b"--size" in done.stderr
    done = run(["bench", "udp", "--rate", "fast"])
    assert done.returncode == 2 and b"bad rate 'fast'" in done.stderr


# --------------------------------------------------------------------------- netns


def _bench_namespaces() -> set[str]:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return {line.split()[0] for line in done.stdout.splitlines()
            if line.startswith("tl-bench-")}


needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="creating network namespaces needs root and iproute2")


@needs_root
@pytest.mark.timeout(90)
def test_netns_kind_crosses_a_veth_pair_and_cleans_up() -> None:
    before = _bench_namespaces()
    done = run(["bench", "udp", "--kinds", "netns", "--rate", "2000pps", "--size", "64",
                "--seconds", "0.2", "--rounds", "1", "--json"], timeout=80)
    assert done.returncode == 0, done.stderr.decode()
    cells = {c["impl"]: c for c in json.loads(done.stdout)["cells"]}
    for impl in ("raw", "trunkline"):
        assert cells[impl]["error"] is None and cells[impl]["received"] > 0, cells[impl]
    assert _bench_namespaces() == before  # ours are gone


@needs_root
@pytest.mark.timeout(60)
def test_netns_dont_fragment_over_the_path_mtu_is_a_clear_error() -> None:
    before = _bench_namespaces()
    done = run(["bench", "udp", "--kinds", "netns", "--impls", "trunkline", "--size", "1473",
                "--dont-fragment", "--seconds", "0.1", "--rounds", "1"], timeout=50)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "EMSGSIZE" in err and "the path MTU is 1500 bytes" in err and "at most 1472" in err
    assert _bench_namespaces() == before


def test_netns_without_root_says_so() -> None:
    needs_nobody_reads_tree()
    done = subprocess.run(as_nobody(*TRUNKLINE, "bench", "udp", "--kinds", "netns"),
                          capture_output=True, timeout=60, cwd="/")
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "needs root" in err and "sudo" in err

