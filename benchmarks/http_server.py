"""Hello-world requests per second with keep-alive: trunkline's HTTP server vs uvicorn.

Same ASGI app (``trunkline.apps.hello:hello_app``), one worker each, both on uvloop
and httptools, access logs off on both. Over TCP the load comes from ``wrk``; over a Unix
socket from ``h2load --h1 -B unix:PATH`` (Debian ``nghttp2-client``). Each round runs both
servers back to back and rounds alternate, so the ratio is measured side by side.

Pinning (default): the server runs on CPU 0 and the load generator on CPU 1 (``taskset``).
Besides req/s the script reports the server's CPU time per request (user + system, from
/proc), which is steadier than req/s on a shared machine.

    python benchmarks/http_server.py                      # 3 rounds, 5 s each, tcp and unix
    python benchmarks/http_server.py --seconds 2 --rounds 1 --kinds tcp
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

APP = "trunkline.apps.hello:hello_app"
OURS = (
    "import sys\n"
    "from trunkline._loop import run\n"
    "from trunkline.server import ServerConfig, load_app, serve_app\n"
    "run(serve_app(load_app('hello'), sys.argv[1], "
    "config=ServerConfig(access_log=False, lifespan='off')))\n"
)


@dataclass
class Result:
    server: str
    kind: str
    rps: float
    cpu_us: float  # server CPU per request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def start(server: str, kind: str, where: str, cpu: int | None) -> subprocess.Popen[bytes]:
    if server == "trunkline":
        url = f"tcp://127.0.0.1:{where}" if kind == "tcp" else f"unix://{where}"
        argv = [sys.executable, "-c", OURS, url]
    else:
        bind = ["--port", where] if kind == "tcp" else ["--uds", where]
        argv = [sys.executable, "-m", "uvicorn", APP, *bind, "--loop", "uvloop", "--http",
                "httptools", "--no-access-log", "--lifespan", "off", "--log-level", "warning"]
    proc = subprocess.Popen(pinned(cpu, argv), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # a benchmark may poll; tests may not
        try:
            if kind == "tcp":
                socket.create_connection(("127.0.0.1", int(where)), timeout=1).close()
            else:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(where)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{server} did not start on {kind} {where}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(kind: str, where: str, seconds: float, connections: int, cpu: int | None
         ) -> tuple[float, int]:
    """(req/s, requests) from one run of the load generator."""
    if kind == "tcp":
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", f"http://127.0.0.1:{where}/"]
        out = subprocess.run(pinned(cpu, argv), capture_output=True, text=True, check=True).stdout
        total = re.search(r"(\d+) requests in", out)
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    else:
        argv = ["h2load", "--h1", "-t1", f"-c{connections}", f"-D{max(1, round(seconds))}", "-B",
                f"unix:{where}", "http://localhost/"]
        out = subprocess.run(pinned(cpu, argv), capture_output=True, text=True, check=True).stdout
        total = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
        rps = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out)
    if not total or not rps:
        raise RuntimeError(f"cannot read the load generator's output:\n{out}")
    return float(rps.group(1)), int(total.group(1))


def measure(server: str, kind: str, seconds: float, connections: int, pin: bool,
            tmp: Path) -> Result:
    where = str(free_port()) if kind == "tcp" else str(tmp / f"{server}.sock")
    proc = start(server, kind, where, 0 if pin else None)
    try:
        load(kind, where, 1.0, connections, 1 if pin else None)  # warm up
        before = cpu_seconds(proc.pid)
        rps, total = load(kind, where, seconds, connections, 1 if pin else None)
        used = cpu_seconds(proc.pid) - before
    finally:
        proc.terminate()
        proc.wait(10)
    return Result(server, kind, rps, used / max(total, 1) * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--kinds", default="tcp,unix", help="tcp, unix or both")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    need = {"wrk"} if "tcp" in kinds else set()
    need |= {"h2load"} if "unix" in kinds else set()
    need |= set() if args.no_pin else {"taskset"}
    missing = [tool for tool in sorted(need) if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing {', '.join(missing)} (apt install wrk nghttp2-client util-linux)")
    pin = not args.no_pin
    print(f"hello world, keep-alive, {args.connections} connections, {args.seconds:g} s x "
          f"{args.rounds} rounds; " + ("server pinned to CPU 0, load generator to CPU 1"
                                       if pin else "not pinned"))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="tl-bench-") as tmp:
        for round_no in range(args.rounds):
            for kind in kinds:
                order = ["trunkline", "uvicorn"] if round_no % 2 == 0 else ["uvicorn", "trunkline"]
                for server in order:
                    result = measure(server, kind, args.seconds, args.connections, pin,
                                     Path(tmp))
                    results.append(result)
                    print(f"  round {round_no + 1} {kind:4} {server:9} {result.rps:10.0f} req/s"
                          f"  {result.cpu_us:6.2f} us CPU/request", flush=True)
    # Other work on the machine only ever slows a run down, so besides the medians the
    # best run of each (highest req/s, lowest CPU per request) is shown.
    for label, pick_rps, pick_cpu in (("median", statistics.median, statistics.median),
                                      ("best", max, min)):
        print()
        print(f"{'kind':5} {'trunkline req/s':>16} {'uvicorn req/s':>14} {'ratio':>6} "
              f"{'us CPU/req':>11} {'vs':>6} {'ratio':>6}   ({label} of {args.rounds})")
        for kind in kinds:
            ours = [r for r in results if r.kind == kind and r.server == "trunkline"]
            theirs = [r for r in results if r.kind == kind and r.server == "uvicorn"]
            o_rps = pick_rps([r.rps for r in ours])
            u_rps = pick_rps([r.rps for r in theirs])
            o_cpu = pick_cpu([r.cpu_us for r in ours])
            u_cpu = pick_cpu([r.cpu_us for r in theirs])
            print(f"{kind:5} {o_rps:16.0f} {u_rps:14.0f} {o_rps / u_rps:6.2f} {o_cpu:11.2f} "
                  f"{u_cpu:6.2f} {u_cpu / o_cpu:6.2f}")


if __name__ == "__main__":
    main()
