"""What tracing costs the HTTP server: hello-world requests/s with keep-alive, side by side.

Servers (each in its own process on CPU 0, ``wrk`` on CPU 1, both pinned with ``taskset``):

- ``baseline``: the commit before the tracing integration landed (``--baseline REV``,
  default below), checked out into a temporary ``git worktree`` and run from there, tracing
  off (``tracer=None``).
- ``off``: HEAD (``--head REV``), also in a temporary worktree, tracing off.
- ``cli-off``: HEAD through ``trunkline serve hello`` without ``--trace`` (only when
  the command serves HTTP apps), so the CLI's wiring is measured too.
- ``null``: HEAD with ``Tracer(keep=False)`` and no sinks: every event is built and
  dropped (the guards pass, ``record`` runs).
- ``jsonl``: HEAD with a JSON lines sink, as ``trunkline serve --trace-file`` writes.

Every server runs the same app (``trunkline.apps.hello``), access log and lifespan
off. Each round runs every variant once, in a rotated order; the figures are medians over
the rounds, req/s from wrk and the server's CPU time per request (user + system, from /proc,
steadier than req/s on a shared machine), with ratios to the baseline; best-of beside
medians, since a busy machine only ever slows a run down. Target: ``off`` within 3 % of
``baseline``.

Because req/s on a shared 2-vCPU VM swings by 3x with other people's load, the script also
counts the instructions each server runs per request under valgrind's callgrind (a run of
2500 keep-alive GETs minus a run of 500, so start-up cancels out; ``PYTHONHASHSEED=0``):
that figure does not depend on the machine's load. Needs ``valgrind`` (skipped without it,
or with ``--no-instructions``).

The server's tracing guards (``if tracer is not None`` around every ``record``) predate the
baseline: they came with the server itself. So ``off`` vs ``baseline`` measures what the
integration (CLI switches, client resolver, tour leg) costs a server that does not trace,
plus whatever else changed in the server since the baseline. The guards' own cost is
measured separately: a microbenchmark of one ``self.tracer is not None`` test (the
guard's shape), times the number of guarded sites a keep-alive request passes (counted as
the events a traced request records, plus the two guards that only take a timestamp);
and ``null`` vs ``off`` shows what turning tracing on costs when nothing is kept.

    python benchmarks/tracing_cost.py                       # 5 rounds x 4 s, ~2 minutes
    python benchmarks/tracing_cost.py --seconds 2 --rounds 2
    python benchmarks/tracing_cost.py --baseline HEAD~5 --json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from dataclasses import asdict, dataclass
from pathlib import Path

#: The last commit before the tracing integration's first commit (6469fea, the client's
#: resolver); the server's tracer guards are older than this.
DEFAULT_BASELINE = "d14499128b317053d9dbfc759003916d32cef11c"
REPO = Path(__file__).resolve().parent.parent
#: Guards a keep-alive request passes that record nothing: the head's first-bytes stamp
#: (HttpServerConnection.data_received) and the app's start stamp (HttpServerConnection._run).
EXTRA_GUARDS = 2

# Runs in the server process; argv: URL MODE. Works on the baseline's tree and on HEAD's.
SERVER = """\
import sys
import trunkline
from trunkline._loop import run
from trunkline.server import ServerConfig, load_app, serve_app
from trunkline.trace import JsonLinesSink, Tracer

url, mode = sys.argv[1], sys.argv[2]
if mode == "off":
    tracer = None
elif mode == "null":
    tracer = Tracer(keep=False)
else:
    tracer = Tracer(JsonLinesSink(mode.removeprefix("jsonl:")), keep=False)
print("trunkline from", trunkline.__file__, file=sys.stderr, flush=True)
run(serve_app(load_app("hello"), url, tracer=tracer,
              config=ServerConfig(access_log=False, lifespan="off")))
"""


@dataclass
class Sample:
    variant: str
    rps: float
    cpu_us: float  # server CPU per request


@dataclass
class Figures:
    variant: str
    rps: float  # median over the rounds
    cpu_us: float  # median
    rps_ratio: float  # to the baseline's; > 1 is faster
    cpu_ratio: float  # to the baseline's; > 1 is more CPU per request
    best_rps: float  # best of the rounds: a shared machine only ever slows a run down
    best_cpu_us: float
    best_rps_ratio: float
    best_cpu_ratio: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # a benchmark may poll; tests may not
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not start on port {port}")


def server_argv(variant: str, trees: dict[str, Path], url: str, tmp: Path) -> tuple[
        list[str], dict[str, str]]:
    env = dict(os.environ)
    if variant == "cli-off":
        env["PYTHONPATH"] = str(trees["head"] / "src")
        return [sys.executable, "-m", "trunkline", "serve", "hello", "--on", url, "-q"], env
    tree = trees["baseline" if variant == "baseline" else "head"]
    env["PYTHONPATH"] = str(tree / "src")  # ahead of the editable install
    mode = {"baseline": "off", "off": "off", "null": "null"}.get(
        variant, f"jsonl:{tmp / 'trace.jsonl'}")
    return [sys.executable, "-c", SERVER, url, mode], env


def measure(variant: str, trees: dict[str, Path], seconds: float, connections: int,
            pin: bool, tmp: Path) -> Sample:
    port = free_port()
    argv, env = server_argv(variant, trees, f"tcp://127.0.0.1:{port}", tmp)
    proc = subprocess.Popen(pinned(0 if pin else None, argv), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(port, proc, variant)
        url = f"http://127.0.0.1:{port}/"
        # warm up (imports, caches), then measure
        subprocess.run(pinned(1 if pin else None, ["wrk", "-t1", f"-c{connections}",
                                                    "-d1s", url]),
                       check=True, capture_output=True)
        cpu0 = cpu_seconds(proc.pid)
        done = subprocess.run(pinned(1 if pin else None, [
            "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url]),
            check=True, capture_output=True, text=True)
        cpu1 = cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    rps_match = re.search(r"Requests/sec:\s*([\d.]+)", done.stdout)
    total = re.search(r"(\d+) requests in", done.stdout)
    if not rps_match or not total:
        raise RuntimeError(f"cannot read wrk's output:\n{done.stdout}")
    if " Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"{variant}: wrk saw errors:\n{done.stdout}")
    origin = err.decode(errors="replace").strip().splitlines()
    if variant != "cli-off" and origin:
        expected = trees["baseline" if variant == "baseline" else "head"]
        if not origin[0].startswith(f"trunkline from {expected}"):
            raise RuntimeError(f"{variant} ran the wrong tree: {origin[0]}")
    requests = int(total.group(1))
    return Sample(variant, float(rps_match.group(1)), (cpu1 - cpu0) / requests * 1e6)


def cli_serves_http(head: Path) -> bool:
    done = subprocess.run([sys.executable, "-m", "trunkline", "serve", "--help"],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(head / "src")})
    return bool(re.search(r"^\s+hello\b", done.stdout, re.MULTILINE))


# --------------------------------------------------------------------------- instructions


def instructions(variant: str, trees: dict[str, Path], tmp: Path, requests: int) -> int:
    """Instructions the server process ran (valgrind's callgrind) to start, serve
    ``requests`` sequential keep-alive GETs and stop."""
    port = free_port()
    argv, env = server_argv(variant, trees, f"tcp://127.0.0.1:{port}", tmp)
    env["PYTHONHASHSEED"] = "0"  # the same dict layouts in every run
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                             *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # python starts slowly under valgrind
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{variant} did not start under valgrind") from None
                time.sleep(0.1)
        with sock:
            request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
            for _ in range(requests):
                sock.sendall(request)
                reply = b""
                while not reply.endswith(b"Hello, world!\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise RuntimeError(f"{variant} closed the connection")
                    reply += chunk
        proc.terminate()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    found = re.search(rb"Collected : (\d+)", err)
    if not found:
        raise RuntimeError(f"no instruction count from callgrind for {variant}")
    return int(found.group(1))


def instructions_per_request(variant: str, trees: dict[str, Path], tmp: Path,
                             few: int = 500, many: int = 2500) -> float:
    """The difference of two runs, so start-up and shutdown cancel out."""
    return (instructions(variant, trees, tmp, many)
            - instructions(variant, trees, tmp, few)) / (many - few)


# --------------------------------------------------------------------------- the guards


def guard_cost_ns(repeat: int = 7, number: int = 2_000_000) -> float:
    """One ``if self.tracer is not None`` (the server's usual shape: an attribute of the
    connection, None), net of the loop around it (ns); a guard on a local costs less."""
    setup = ("class Conn:\n    def __init__(self):\n        self.tracer = None\n"
             "self = Conn()")
    guarded = "if self.tracer is not None:\n    self.tracer.record()"
    bare = "pass"
    with_guard = min(timeit.repeat(guarded, setup, repeat=repeat, number=number))
    without = min(timeit.repeat(bare, setup, repeat=repeat, number=number))
    return max(0.0, (with_guard - without) / number * 1e9)


def events_per_request(head: Path, requests: int = 200) -> float:
    """Server events a keep-alive request records (so: guards that pass when tracing)."""
    code = f"""
import asyncio, sys
sys.path.insert(0, {str(head / 'src')!r})
import trunkline
from trunkline.server import AppServer, ServerConfig, load_app
from trunkline.trace import Tracer

async def main():
    tracer = Tracer()
    async with AppServer(load_app("hello"), "tcp://127.0.0.1:0", tracer=tracer,
                         config=ServerConfig(access_log=False, lifespan="off")) as server:
        url = server.urls[0].replace("tcp://", "http://") + "/"
        async with trunkline.Client() as client:
            for _ in range({requests}):
                await client.get(url)
    print(sum(1 for e in tracer.events if e.step.value not in ("accept", "close")) / {requests})

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return float(done.stdout.strip())


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, metavar="REV",
                        help="the commit to compare with (default: the last one before the "
                             "tracing integration)")
    parser.add_argument("--head", default="HEAD", metavar="REV",
                        help="the commit measured against the baseline (default: HEAD)")
    parser.add_argument("--seconds", type=float, default=4.0, help="wrk run per variant")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--no-instructions", action="store_true",
                        help="skip the instruction counts (valgrind, about 2 minutes)")
    args = parser.parse_args()
    for tool in ("wrk", "git") + (() if args.no_pin else ("taskset",)):
        if shutil.which(tool) is None:
            raise SystemExit(f"tracing_cost needs {tool} (apt-get install {tool})")

    say = (lambda *a: None) if args.json else print
    tmp = Path(tempfile.mkdtemp(prefix="tl-tracecost-"))
    trees: dict[str, Path] = {}
    revs: dict[str, str] = {}
    try:
        for name, wanted in (("baseline", args.baseline), ("head", args.head)):
            revs[name] = subprocess.run(["git", "-C", str(REPO), "rev-parse", wanted],
                                        capture_output=True, text=True,
                                        check=True).stdout.strip()
            trees[name] = tmp / name
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach",
                            str(trees[name]), revs[name]], check=True, capture_output=True)
        rev = revs["baseline"]
        variants = ["baseline", "off", "null", "jsonl"]
        if cli_serves_http(trees["head"]):
            variants.insert(2, "cli-off")
        say(f"baseline {rev[:10]} vs head {revs['head'][:10]}; {args.rounds} rounds x "
            f"{args.seconds:g} s, "
            f"wrk -c{args.connections}, server on CPU 0, wrk on CPU 1"
            + (" (unpinned)" if args.no_pin else ""))
        samples: list[Sample] = []
        for r in range(args.rounds):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            for variant in order:
                sample = measure(variant, trees, args.seconds, args.connections,
                                 not args.no_pin, tmp)
                samples.append(sample)
                say(f"  round {r + 1}: {variant:8} {sample.rps:9.0f} req/s "
                    f"{sample.cpu_us:6.1f} µs CPU/req")
        figures = summarize(samples, variants)
        counted: dict[str, float] = {}
        if not args.no_instructions and shutil.which("valgrind") is not None:
            say("instructions per request (callgrind, 2500 minus 500 keep-alive GETs):")
            for variant in variants:
                counted[variant] = instructions_per_request(variant, trees, tmp)
                say(f"  {variant:8} {counted[variant]:9.0f}")
        guard_ns = guard_cost_ns()
        per_request = events_per_request(trees["head"])
        report = {
            "baseline": rev, "head": revs["head"], "rounds": args.rounds, "seconds": args.seconds,
            "connections": args.connections, "pinned": not args.no_pin,
            "figures": [asdict(f) for f in figures],
            "instructions_per_request": {v: round(n) for v, n in counted.items()},
            "guard_ns": round(guard_ns, 2),
            "traced_events_per_request": per_request,
            "guards_per_request": per_request + EXTRA_GUARDS,
            "guard_cost_per_request_ns": round(guard_ns * (per_request + EXTRA_GUARDS), 1),
        }
        if args.json:
            print(json.dumps(report, indent=2))
            return
        print()
        print(f"{'':10} {'median':^38}   {'best of ' + str(args.rounds):^38}")
        print(f"{'variant':10} {'req/s':>9} {'vs base':>8} {'µs CPU/req':>11} {'vs base':>8}   "
              f"{'req/s':>9} {'vs base':>8} {'µs CPU/req':>11} {'vs base':>8}")
        for f in figures:
            print(f"{f.variant:10} {f.rps:9.0f} {f.rps_ratio:8.3f} {f.cpu_us:11.2f} "
                  f"{f.cpu_ratio:8.3f}   {f.best_rps:9.0f} {f.best_rps_ratio:8.3f} "
                  f"{f.best_cpu_us:11.2f} {f.best_cpu_ratio:8.3f}")
        if counted:
            base = counted["baseline"]
            print("\ninstructions per request (load-independent): " + ", ".join(
                f"{v} {n:.0f} ({n / base:.3f}x)" for v, n in counted.items()))
        off = next(f for f in figures if f.variant == "off")
        if counted:  # the load-independent figure decides
            ratio = counted["off"] / counted["baseline"]
            judged = f"instructions per request {ratio:.3f}x"
            ok = ratio <= 1.03
        else:
            judged = f"best req/s {off.best_rps_ratio:.3f}x"
            ok = off.best_rps_ratio >= 0.97
        print(f"\ntracing off vs the baseline: {judged}; best req/s {off.best_rps_ratio:.3f}x, "
              f"median req/s {off.rps_ratio:.3f}x, median CPU per request "
              f"{off.cpu_ratio:.3f}x: {'within' if ok else 'NOT within'} 3 %")
        guards = per_request + EXTRA_GUARDS
        print(f"guards: {guard_ns:.1f} ns each x {guards:g} per keep-alive request = "
              f"{guard_ns * guards:.0f} ns per request "
              f"(server CPU per request: {off.cpu_us:.1f} µs)")
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(tree)], check=False, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def summarize(samples: list[Sample], variants: list[str]) -> list[Figures]:
    def stats(v: str) -> tuple[float, float, float, float]:
        rps = [s.rps for s in samples if s.variant == v]
        cpu = [s.cpu_us for s in samples if s.variant == v]
        return statistics.median(rps), statistics.median(cpu), max(rps), min(cpu)

    figures = {v: stats(v) for v in variants}
    b_rps, b_cpu, b_best_rps, b_best_cpu = figures["baseline"]
    return [Figures(v, rps, cpu, rps / b_rps, cpu / b_cpu, best_rps, best_cpu,
                    best_rps / b_best_rps, best_cpu / b_best_cpu)
            for v, (rps, cpu, best_rps, best_cpu) in figures.items()]


if __name__ == "__main__":
    main()
