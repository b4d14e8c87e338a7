"""The service registry: registering 1,000 instances, resolving a name from the cache, and
a call by name against the same call to the address (side by side, with the ratio).

    python benchmarks/registry.py                       # SQLite and etcd, 1,000 instances
    python benchmarks/registry.py --backends sqlite --count 200
    python benchmarks/registry.py --etcd etcd://10.0.0.5:2379 --json
    python benchmarks/registry.py --backends '' --connects 0 --blocks 30   # by name only

Registration: ``count`` instance records (each with a Unix path, an abstract name and a TCP
address) registered through one store, first one after another (each waits for the
previous: the latency of one registration), then all at once (``--in-flight`` concurrent
calls; SQLite serialises them on its worker thread, etcd pipelines them on one gRPC channel),
then deregistered. SQLite writes a file in a fresh temp dir; etcd is a single member this
script starts on free ports with a temp data dir (Debian's /usr/bin/etcd), unless --etcd
names one. Each phase is timed with time.perf_counter.

Resolve: a Resolver that has read the registry once answers ``cached(name)`` from memory
(two instances, so the round-robin turn is part of it) and ``await resolve(name)``; the
mean over --resolves calls, on the stdlib loop.

Connect (the other half of the ranking's evidence; ``trunkline bench pingpong`` gives the
round trips): median time of a new connection plus one 64-byte round trip, per same-host
stream kind, trunkline.connect against a trunkline.serve echo, --connects each, on uvloop.

By name vs by address (``trunkline.bench.byname``): HTTP keep-alive GETs through
``http+svc://`` against ``http+unix://`` to the same abstract socket, and a new raw
connection plus one round trip through ``svc://`` against ``unix:@``; --blocks alternating
blocks each, medians of the per-block means, the ratio by name / by address, on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout

from trunkline.registry import Resolver, make_instance, open_registry  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Etcd:
    """One etcd member on free loopback ports, ready when it says it serves clients."""

    def __init__(self) -> None:
        etcd = shutil.which("etcd")
        if etcd is None:
            raise SystemExit("etcd is not installed (Debian: apt-get install etcd-server)")
        self.dir = tempfile.mkdtemp(prefix="tl-bench-etcd-")
        client, peer = free_port(), free_port()
        self.url = f"etcd://127.0.0.1:{client}"
        self.proc = subprocess.Popen(
            [etcd, "--name", "bench", "--data-dir", self.dir,
             "--listen-client-urls", f"http://127.0.0.1:{client}",
             "--advertise-client-urls", f"http://127.0.0.1:{client}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"bench=http://127.0.0.1:{peer}",
             "--logger", "zap", "--log-outputs", "stderr"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ready = threading.Event()

        def watch() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                if b"serving client traffic" in line:
                    ready.set()
        threading.Thread(target=watch, daemon=True).start()
        if not ready.wait(30):
            self.close()
            raise SystemExit("etcd did not start within 30 s")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        shutil.rmtree(self.dir, ignore_errors=True)


async def registration(url: str, count: int, in_flight: int) -> dict[str, Any]:
    store = open_registry(url)
    tag = os.urandom(3).hex()
    instances = [make_instance("bench", [f"unix:///run/bench/{i}.sock", f"unix:@b-{tag}-{i}",
                                         f"tcp://127.0.0.1:{10000 + i}"],
                               instance_id=f"bench-{tag}-{i}", ttl=60) for i in range(count)]
    try:
        await store.list()  # open the file / the channel outside the timing
        start = time.perf_counter()
        for instance in instances:
            await store.register(instance)
        one_by_one = time.perf_counter() - start
        listed = len(await store.list("bench"))
        start = time.perf_counter()
        for instance in instances:
            await store.deregister(instance)
        deregister = time.perf_counter() - start
        gate = asyncio.Semaphore(in_flight)

        async def one(instance: Any) -> None:
            async with gate:
                await store.register(instance)

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in instances))
        concurrent = time.perf_counter() - start
        listed_concurrent = len(await store.list("bench"))
        for instance in instances:
            await store.deregister(instance)
    finally:
        await store.close()
    assert listed == listed_concurrent == count, (listed, listed_concurrent)
    return {"registry": url.split("://")[0], "count": count, "one_by_one_s": one_by_one,
            "concurrent_s": concurrent, "in_flight": in_flight, "deregister_s": deregister}


async def resolving(url: str, calls: int) -> dict[str, Any]:
    store = open_registry(url)
    tag = os.urandom(3).hex()
    instances = [make_instance("users", [f"unix:@r-{tag}-{i}", "tcp://127.0.0.1:8000"],
                               instance_id=f"r-{tag}-{i}") for i in range(2)]
    try:
        for instance in instances:
            await store.register(instance)
        async with Resolver(open_registry(url), owns_store=True) as resolver:
            await resolver.resolve("users")
            cached = resolver.cached
            start = time.perf_counter()
            for _ in range(calls):
                cached("users")
            sync_s = (time.perf_counter() - start) / calls
            start = time.perf_counter()
            for _ in range(calls // 10):
                await resolver.resolve("users")
            async_s = (time.perf_counter() - start) / (calls // 10)
        for instance in instances:
            await store.deregister(instance)
    finally:
        await store.close()
    return {"registry": url.split("://")[0], "cached_us": sync_s * 1e6,
            "resolve_us": async_s * 1e6, "calls": calls}


async def connecting(rounds: int) -> list[dict[str, Any]]:
    import statistics

    import trunkline

    async def echo(stream: trunkline.Stream) -> None:
        while data := await stream.read():
            await stream.send(data)

    workdir = tempfile.mkdtemp(prefix="tl-bench-connect-", dir="/tmp")
    urls = {"abstract": f"unix:@tl-bench-{os.urandom(4).hex()}",
            "unix": f"unix://{workdir}/echo.sock", "fifo": f"fifo://{workdir}/echo.fifo",
            "tcp": "tcp://127.0.0.1:0"}
    server = await trunkline.serve(echo, *urls.values())
    out = []
    try:
        for kind, url in zip(urls, server.urls, strict=True):
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                stream = await trunkline.connect(url)
                await stream.send(b"x" * 64)
                await stream.readexactly(64)
                times.append(time.perf_counter() - start)
                stream.close()
                await stream.wait_closed()
            out.append({"kind": kind, "connect_and_round_trip_us":
                        statistics.median(times) * 1e6, "rounds": rounds})
    finally:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,etcd",
                        help="sqlite,etcd (default both; '' for none)")
    parser.add_argument("--count", type=int, default=1000, help="instances (default 1000)")
    parser.add_argument("--in-flight", type=int, default=64, help="concurrent registrations")
    parser.add_argument("--resolves", type=int, default=1_000_000, help="cached resolves")
    parser.add_argument("--connects", type=int, default=300,
                        help="new connections per kind (0: skip)")
    parser.add_argument("--blocks", type=int, default=20,
                        help="by name vs by address: alternating blocks each (0: skip)")
    parser.add_argument("--http-per-block", type=int, default=500)
    parser.add_argument("--raw-per-block", type=int, default=100)
    parser.add_argument("--etcd", help="an etcd registry URL to use instead of starting one")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    resolves: list[dict[str, Any]] = []
    for backend in filter(None, args.backends.split(",")):
        etcd = None
        workdir = tempfile.mkdtemp(prefix="tl-bench-registry-")
        try:
            if backend == "sqlite":
                url = f"sqlite://{workdir}/registry.db"
            elif args.etcd:
                url = args.etcd
            else:
                etcd = Etcd()
                url = etcd.url
            results.append(asyncio.run(registration(url, args.count, args.in_flight)))
            resolves.append(asyncio.run(resolving(url, args.resolves)))
        finally:
            if etcd is not None:
                etcd.close()
            shutil.rmtree(workdir, ignore_errors=True)
    connects: list[dict[str, Any]] = []
    if args.connects:
        from trunkline import _loop

        connects = _loop.run(connecting(args.connects))
    pairs: list[dict[str, Any]] = []
    if args.blocks:
        from trunkline import _loop
        from trunkline.bench.byname import by_name_vs_direct

        pairs = [p.to_dict() for p in _loop.run(by_name_vs_direct(
            blocks=args.blocks, http_per_block=args.http_per_block,
            raw_per_block=args.raw_per_block))]
    if args.json:
        print(json.dumps({"registration": results, "resolve": resolves,
                          "connect": connects, "by_name": pairs}, indent=2))
        return
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    if results:
        print(f"\nregistering {args.count} instances through one store")
        print(f"{'registry':<9} {'one by one':>12} {'per call':>10} {'concurrent':>12} "
              f"{'deregister':>12}")
    for r in results:
        print(f"{r['registry']:<9} {r['one_by_one_s']:>11.2f}s "
              f"{r['one_by_one_s'] / r['count'] * 1e3:>8.2f}ms {r['concurrent_s']:>11.2f}s "
              f"{r['deregister_s']:>11.2f}s")
    if resolves:
        print("\nresolve from the cache (2 instances, round-robin)")
    for r in resolves:
        print(f"{r['registry']:<9} cached() {r['cached_us']:.2f} us   "
              f"await resolve() {r['resolve_us']:.2f} us")
    if connects:
        print("\nnew connection + one 64-byte round trip, median")
        for c in connects:
            print(f"{c['kind']:<9} {c['connect_and_round_trip_us']:8.1f} us")
    if pairs:
        print("\nby name (cached) vs by address, same abstract socket, median of "
              f"{args.blocks} alternating blocks")
        print(f"{'workload':<31} {'by name':>10} {'by address':>11} {'ratio':>7}")
        for p in pairs:
            print(f"{p['workload']:<31} {p['by_name_s'] * 1e6:>8.1f}us "
                  f"{p['direct_s'] * 1e6:>9.1f}us {p['ratio']:>6.3f}x")


if __name__ == "__main__":
    main()
