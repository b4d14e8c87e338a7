"""The HTTP servers ``trunkline bench http`` compares, each started as its own command line,
and the load generators that drive them.

What users run: ``trunkline serve module:app -q``, ``uvicorn module:app --no-access-log``
(httptools + uvloop) and ``granian --interface asgi`` (uvloop), the same hello-world ASGI app
in each. ``-q`` / ``--no-access-log`` are left out for the access-log variant, and granian gets
``--access-log`` there (its default is off), so every server logs each request. Optional
fourth: ``trunkline-api``, the library call (``serve_app`` in a ``python -c``, as
benchmarks/http_server.py used to measure), to compare the CLI with the direct call.

Each server's stdout and stderr go to its own log file, so a logging server pays for writing
its lines and nobody's pipe fills up; the file is also where a failed start is explained.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .process import BenchError, pinnable, worker_env

APP = "trunkline.apps.hello:hello_app"
SERVERS = ("trunkline", "uvicorn", "granian", "trunkline-api")
DEFAULT_SERVERS = ("trunkline", "uvicorn", "granian")
#: trunkline-api: the library call, one process, lifespan off (what the old script measured);
#: with the access log on, INFO records go to stderr as the CLI's do
API_SCRIPT = (
    "import logging, sys\n"
    "from trunkline._loop import run\n"
    "from trunkline.server import ServerConfig, load_app, serve_app\n"
    "log = sys.argv[3] == 'on'\n"
    "if log:\n"
    "    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')\n"
    "run(serve_app(load_app(sys.argv[1]), sys.argv[2],\n"
    "              config=ServerConfig(access_log=log, lifespan='off')))\n")
KINDS = ("tcp", "unix")
START_TIMEOUT = 30.0
_POLL = 0.02  # seconds between readiness checks (a benchmark may poll; tests may not)


class ServerUnsupportedError(BenchError):
    """The server refused an option of this case (e.g. an older ``trunkline serve`` without
    ``--workers``): shown as a table cell, not a failure."""


@dataclass(frozen=True)
class Case:
    kind: str  # tcp | unix
    workers: int
    access_log: bool

    @property
    def label(self) -> str:
        text = f"{self.kind} {self.workers}w"
        return text + " log" if self.access_log else text

    @property
    def pinned(self) -> bool:
        """One worker: server on CPU 0, load on CPU 1. More: nothing pinned, the workers
        and the load generator share the cores (as they would on a real machine)."""
        return self.workers == 1


def available(server: str) -> str | None:
    """None when ``server`` can run here, else why not."""
    import importlib.util

    module = {"trunkline": "trunkline", "uvicorn": "uvicorn", "granian": "granian",
              "trunkline-api": "trunkline"}[server]
    if importlib.util.find_spec(module) is None:
        return f"{server} is not installed (pip install {server}, or the bench extra)"
    return None


def server_argv(server: str, case: Case, where: str) -> list[str]:
    """The command line: ``where`` is a TCP port (0 = any, trunkline only) or a socket path.
    Raises ``ServerUnsupportedError`` for a case the server cannot run."""
    if server == "trunkline":
        url = f"tcp://127.0.0.1:{where}" if case.kind == "tcp" else f"unix://{where}"
        argv = [sys.executable, "-m", "trunkline", "serve", APP, "--on", url]
        argv += [] if case.access_log else ["-q"]
        # Only when asked: a one-worker run is exactly what users run today, and a serve
        # that does not know --workers can still be measured with one.
        return argv + (["--workers", str(case.workers)] if case.workers != 1 else [])
    bind = (["--host", "127.0.0.1", "--port", where] if case.kind == "tcp"
            else ["--uds", where])
    workers = ["--workers", str(case.workers)] if case.workers != 1 else []
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", APP, *bind, "--loop", "uvloop", "--http",
                "httptools", *([] if case.access_log else ["--no-access-log"]), *workers]
    if server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop",
                *bind, *(["--access-log"] if case.access_log else []), *workers, APP]
    if server == "trunkline-api":
        if case.workers != 1:
            raise ServerUnsupportedError("not supported by the library call (serve_app runs "
                                         "one process; --workers is trunkline serve's)")
        url = f"tcp://127.0.0.1:{where}" if case.kind == "tcp" else f"unix://{where}"
        return [sys.executable, "-c", API_SCRIPT, APP, url, "on" if case.access_log else "off"]
    raise BenchError(f"unknown server {server!r}; choose from {', '.join(SERVERS)}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RunningServer:
    """One server process (and its workers), started and ready to take load."""

    def __init__(self, server: str, case: Case, workdir: Path, cpu: int | None) -> None:
        self.server = server
        self.case = case
        self.log_path = workdir / f"{server}-{case.kind}-{case.workers}-{int(case.access_log)}.log"
        if case.kind == "unix":
            self.where = str(workdir / f"{server}.sock")
            Path(self.where).unlink(missing_ok=True)
        else:  # trunkline takes port 0 and says which; the others need one picked for them
            self.where = "0" if server == "trunkline" else str(free_port())
        argv = server_argv(server, case, self.where)
        if cpu is not None and pinnable(cpu):
            argv = ["taskset", "-c", str(cpu), *argv]
        self.argv = argv
        with open(self.log_path, "wb") as log:
            # its own session: stopping it can reach every worker it forked
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=worker_env(),
                                         cwd=workdir, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self._exited(code)
            if self._accepts():
                return
            time.sleep(_POLL)
        raise BenchError(f"{self.server} did not start listening within {START_TIMEOUT:.0f} s: "
                         f"{self.log_tail() or 'no output'}")

    def _exited(self, code: int) -> None:
        log = self.log_tail(8)
        if (self.server == "trunkline" and self.case.workers != 1 and code == 2
                and "--workers" in log):
            raise ServerUnsupportedError(
                "not supported by this trunkline serve (it refused --workers: "
                f"{log.rsplit('|', 1)[-1].strip()})")
        raise BenchError(f"{self.server} exited with status {code} before listening: "
                         f"{log or 'no output'}")

    def _accepts(self) -> bool:
        if self.case.kind == "tcp" and self.where == "0":  # trunkline: its ready line
            found = re.search(r"listening on tcp://127\.0\.0\.1:(\d+)",
                              self.log_path.read_text(errors="replace"))
            if found is None:
                return False
            self.where = found.group(1)
        family = socket.AF_INET if self.case.kind == "tcp" else socket.AF_UNIX
        target: tuple[str, int] | str = (("127.0.0.1", int(self.where))
                                         if self.case.kind == "tcp" else self.where)
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(target)
            except OSError:
                return False
        return True

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and every process below it (workers)."""
        return sum(_cpu_seconds(pid) for pid in _tree(self.proc.pid))

    def stop(self) -> None:
        """SIGTERM (a graceful stop for all three), then SIGKILL to whatever is left."""
        group = self.proc.pid  # its own session: the group of every process it started
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        # Workers that outlived their parent. Only while the group has members: the kernel
        # keeps a group's id from being reused while any member lives, so this cannot hit a
        # stranger that was given the same number since.
        if self.proc.poll() is None or _group_members(group):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait()
        if self.case.kind == "unix":
            Path(self.where).unlink(missing_ok=True)


def _tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _group_members(group: int) -> list[int]:
    """Processes whose process group is ``group``, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group:
                members.append(int(entry))
    return members


def _cpu_seconds(pid: int) -> float:
    """Time on a CPU of every thread of ``pid``, from the scheduler (``schedstat``, in ns).
    ``stat``'s utime + stime are sampled at clock ticks and miss a server that runs in short
    bursts between ticks (it read 4 µs per request where ``schedstat`` read 20), so they are
    only the fallback (kernels without schedstats)."""
    total = 0
    try:
        for thread in os.listdir(f"/proc/{pid}/task"):
            total += int(Path(f"/proc/{pid}/task/{thread}/schedstat").read_text().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Load:
    rate: float  # requests per second
    requests: int
    bad: int  # non-2xx answers and socket errors
    cpu_seconds: float | None = None  # the load generator's own CPU (user + system)


def missing_tools(kinds: list[str], pin: bool) -> list[str]:
    need = {"wrk"} if "tcp" in kinds else set()
    need |= {"h2load"} if "unix" in kinds else set()
    need |= {"taskset"} if pin else set()
    return [tool for tool in sorted(need) if shutil.which(tool) is None]


def run_load(kind: str, where: str, seconds: int, connections: int, cpu: int | None) -> Load:
    """One run of the load generator: wrk over TCP, h2load (HTTP/1.1) over a Unix socket."""
    if kind == "tcp":
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
                f"http://127.0.0.1:{where}/"]
    else:
        argv = ["h2load", "--h1", "-t1", f"-c{connections}", f"-D{seconds}", "-B",
                f"unix:{where}", "http://localhost/"]
    if cpu is not None and pinnable(cpu):
        argv = ["taskset", "-c", str(cpu), *argv]
    # The load generator is the only child reaped in here (servers are stopped elsewhere),
    # so the children's rusage grows by exactly its CPU time.
    before = _children_cpu()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{argv[0]} did not finish within {seconds + 60} s") from exc
    used = _children_cpu() - before
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed (exit {done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-300:]}")
    load = parse_wrk(done.stdout) if kind == "tcp" else parse_h2load(done.stdout)
    return replace(load, cpu_seconds=used)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def parse_wrk(out: str) -> Load:
    total = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not total or not rate:
        raise BenchError(f"cannot read wrk's output: {out.strip()[-300:]}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    count = int(bad.group(1)) if bad else 0
    count += sum(int(n) for n in errors.groups()) if errors else 0
    return Load(float(rate.group(1)), int(total.group(1)), count)


def parse_h2load(out: str) -> Load:
    total = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored", out)
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    status = re.search(r"status codes: (\d+) 2xx", out)
    if not total or not rate:
        raise BenchError(f"cannot read h2load's output: {out.strip()[-300:]}")
    done = int(total.group(1))
    ok = int(status.group(1)) if status else int(total.group(2))
    return Load(float(rate.group(1)), done, done - ok + int(total.group(3)))
