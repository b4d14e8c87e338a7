"""Two network namespaces joined by a veth pair, for benchmarks that cross a real link.

    with veth_pair() as pair:          # needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)
        pair.run_in_a + [...]          # a command prefix: ip netns exec <a>
        pair.address_b                 # 198.18.0.2, reachable from a

The namespaces get fresh random names (``tl-bench-<random>-a`` / ``-b``) and addresses from
198.18.0.0/24 (RFC 2544's benchmarking range: never routed anywhere). Only namespaces this
context created are deleted on the way out, which also removes the veth pair.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .process import BenchError

ADDRESS_A, ADDRESS_B, PREFIX_LEN = "198.18.0.1", "198.18.0.2", 24


@dataclass(frozen=True)
class VethPair:
    ns_a: str
    ns_b: str
    address_a: str = ADDRESS_A
    address_b: str = ADDRESS_B
    mtu: int = 1500

    @property
    def run_in_a(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns_a]

    @property
    def run_in_b(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns_b]


def netns_unavailable() -> str | None:
    """None when this process may create namespaces, else what to do about it."""
    if shutil.which("ip") is None:
        return "the netns kind needs iproute2's ip command (Debian: apt-get install iproute2)"
    if os.geteuid() != 0:
        return ("the netns kind creates two network namespaces and a veth pair, which needs "
                "root: run it with sudo, or leave netns out of --kinds")
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise BenchError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


@contextmanager
def veth_pair(mtu: int = 1500) -> Iterator[VethPair]:
    why = netns_unavailable()
    if why is not None:
        raise BenchError(why)
    tag = secrets.token_hex(3)
    pair = VethPair(f"tl-bench-{tag}-a", f"tl-bench-{tag}-b", mtu=mtu)
    veth_a, veth_b = f"tlb{tag}a", f"tlb{tag}b"  # interface names: at most 15 bytes
    created: list[str] = []
    try:
        for ns in (pair.ns_a, pair.ns_b):
            _ip("netns", "add", ns)
            created.append(ns)
        _ip("-n", pair.ns_a, "link", "add", veth_a, "mtu", str(mtu), "type", "veth", "peer",
            "name", veth_b, "mtu", str(mtu), "netns", pair.ns_b)
        for ns, dev, address in ((pair.ns_a, veth_a, pair.address_a),
                                 (pair.ns_b, veth_b, pair.address_b)):
            _ip("-n", ns, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield pair
    finally:
        for ns in created:  # deleting a namespace deletes its end of the veth, and the pair
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)


__all__ = ["VethPair", "netns_unavailable", "veth_pair"]
