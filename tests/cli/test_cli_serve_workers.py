"""``trunkline serve --workers N``: real worker processes on shared sockets, real clients.

The app says which process answered (``os.getpid()``). ``/hold`` makes placement certain
instead of likely: the worker that takes it blocks in a read of the "gate" FIFO (its event
loop stops, so it accepts nothing) and every new connection must go to another worker; past
the gate it waits, with its loop running, for a byte on the "release" FIFO, so it is a
request in flight while the worker stops.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import trustme

from tests.support.cli_helpers import TRUNKLINE, Service, run
from tests.support.pty_helpers import CTRL_C, Terminal

HOLD_APP = '''
import asyncio, os, sys

GATE, RELEASE = os.environ["WK_GATE"], os.environ["WK_RELEASE"]


async def _wait_release():
    loop = asyncio.get_running_loop()
    fd = os.open(RELEASE, os.O_RDWR | os.O_NONBLOCK)
    try:
        while True:
            try:
                if os.read(fd, 1):
                    return
            except BlockingIOError:
                pass
            readable = loop.create_future()
            loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
            try:
                await readable
            finally:
                loop.remove_reader(fd)
    finally:
        os.close(fd)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/hold":
        os.write(2, f"held by {os.getpid()}\\n".encode())  # one write: lines never mix
        fd = os.open(GATE, os.O_RDWR)
        os.read(fd, 1)  # blocks this worker's loop: it accepts nothing meanwhile
        os.close(fd)
        os.write(2, f"past the gate {os.getpid()}\\n".encode())
        await _wait_release()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
'''

BROKEN_APP = '''
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})
'''


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "holdapp.py").write_text(HOLD_APP)
        (root / "brokenapp.py").write_text(BROKEN_APP)
        self.gate = root / "gate"
        self.release = root / "release"
        os.mkfifo(self.gate)
        os.mkfifo(self.release)
        self.env = {"WK_GATE": str(self.gate), "WK_RELEASE": str(self.release)}
        # held open by the test too, so bytes written before a worker opens one stay there
        self.gate_fd = os.open(self.gate, os.O_RDWR)
        self.release_fd = os.open(self.release, os.O_RDWR)

    def serve(self, *args: str, app: str = "holdapp:app") -> Service:
        return Service(["serve", app, "--app-dir", str(self.root), *args], env=self.env)

    def open_gate(self, count: int) -> None:
        os.write(self.gate_fd, b"x" * count)

    def release_all(self, count: int) -> None:
        os.write(self.release_fd, b"x" * count)

    def close(self) -> None:
        os.close(self.gate_fd)
        os.close(self.release_fd)


@pytest.fixture
def project(short_tmp: Path) -> Iterator[Project]:
    made = Project(short_tmp)
    yield made
    made.close()


def _target(url: str) -> tuple[int, object]:
    if url.startswith(("tcp://", "tls://")):
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        return socket.AF_INET, (host, int(port))
    name = url.removeprefix("unix:").removeprefix("//")
    return socket.AF_UNIX, ("\0" + name[1:] if name.startswith("@") else name)


#: The client's trust for tls:// servers (set by the tls case).
CLIENT_TLS: dict[str, ssl.SSLContext] = {}


def get(url: str, path: str = "/") -> tuple[int, str]:
    """One request on a new connection: (status, body)."""
    family, where = _target(url)
    with socket.socket(family, socket.SOCK_STREAM) as raw:
        raw.settimeout(20)
        raw.connect(where)
        sock = (CLIENT_TLS[url].wrap_socket(raw, server_hostname="127.0.0.1")
                if url.startswith("tls://") else raw)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


class Background:
    """A request on a thread: its (status, body) or the error it met."""

    def __init__(self, url: str, path: str) -> None:
        self.result: tuple[int, str] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(url, path), daemon=True)
        self.thread.start()

    def _run(self, url: str, path: str) -> None:
        try:
            self.result = get(url, path)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def join(self) -> tuple[int, str]:
        self.thread.join(20)
        assert not self.thread.is_alive(), "the request did not finish"
        assert self.error is None, self.error
        assert self.result is not None
        return self.result


def hold(service: Service, url: str) -> tuple[Background, int]:
    """Start a /hold request; return it and the pid of the worker it blocked."""
    request = Background(url, "/hold")
    pid = int(service.wait_for_line(r"held by (\d+)").group(1))
    return request, pid


def wait_for_lines(service: Service, patterns: dict[str, int]) -> None:
    """Until each pattern has matched its count of further lines, in any order."""
    left = dict(patterns)
    while any(left.values()):
        either = "|".join(f"(?:{p})" for p, n in left.items() if n)
        line = service.wait_for_line(either).group(0)
        for pattern in left:
            if left[pattern] and re.search(pattern, line):
                left[pattern] -= 1
                break


def _addresses(kind: str, root: Path) -> list[str]:
    if kind in ("tcp", "tls"):
        return [f"{kind}://127.0.0.1:0"]
    if kind == "unix":
        return [f"unix://{root / 'app.sock'}"]
    return [f"unix:@trunkline-test-{uuid.uuid4().hex[:12]}"]


@pytest.mark.parametrize("kind", ["tcp", "tls", "unix", "abstract"])
def test_two_workers_both_answer(project: Project, kind: str) -> None:
    [address] = _addresses(kind, project.root)
    tls: list[str] = []
    if kind == "tls":
        ca = trustme.CA()
        pem = project.root / "server.pem"
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
        tls = ["--cert", str(pem)]
    with project.serve("--on", address, "--workers", "2", *tls) as service:
        [url] = service.wait_ready(1)
        assert url == address or kind in ("tcp", "tls")
        if kind == "tls":
            CLIENT_TLS[url] = ssl.create_default_context()
            ca.configure_trust(CLIENT_TLS[url])
        held, blocked = hold(service, url)  # that worker now accepts nothing
        status, body = get(url, "/")
        assert status == 200
        assert int(body) != blocked  # the other worker answered
        project.open_gate(1)
        project.release_all(1)
        assert held.join() == (200, str(blocked))
        assert service.stop() == 0
    assert not (project.root / "app.sock").exists()  # the supervisor removed its file


def test_worker_0_alone_owns_the_fifo_rendezvous(project: Project) -> None:
    fifo = project.root / "app.fifo"
    with project.serve("--on", "tcp://127.0.0.1:0", "--on", f"fifo://{fifo}",
                       "--workers", "2") as service:
        owner = int(service.wait_for_line(r"worker 0 ready \(pid (\d+)\)").group(1))
        tcp_url, fifo_url = service.wait_ready(2)
        assert fifo_url == f"fifo://{fifo}"
        held, blocked = hold(service, tcp_url)  # whichever worker it is, the FIFO is 0's
        if blocked != owner:
            called = run(["call", f"http+fifo://{quote(str(fifo), safe='')}/"])
            assert called.returncode == 0, called.stderr
            assert int(called.stdout) == owner
        project.open_gate(1)
        project.release_all(1)
        assert held.join() == (200, str(blocked))
        called = run(["call", f"http+fifo://{quote(str(fifo), safe='')}/"])
        assert called.returncode == 0, called.stderr
        assert int(called.stdout) == owner
        assert service.stop() == 0
    assert not fifo.exists()


def test_a_killed_worker_is_replaced_and_the_others_keep_answering(project: Project) -> None:
    with project.serve("--on", "tcp://127.0.0.1:0", "--workers", "2") as service:
        [url] = service.wait_ready(1)
        held, victim = hold(service, url)
        survivor = int(get(url, "/")[1])
        assert survivor != victim
        os.kill(victim, signal.SIGKILL)
        # while it is replaced, every request is answered (by the survivor, or the new one)
        answers = [get(url, "/") for _ in range(20)]
        assert all(status == 200 for status, _ in answers)
        assert victim not in {int(body) for _, body in answers}
        service.wait_for_line(rf"worker \d \(pid {victim}\) was killed by SIGKILL; "
                              "starting another$")  # at once: one death is not a loop
        replacement = int(service.wait_for_line(r"worker \d ready \(pid (\d+)\)").group(1))
        assert replacement not in (victim, survivor)
        assert held.thread.join(20) is None and held.error is not None  # its own request died
        # the new worker serves: with one of the two held, the other one answers
        held, blocked = hold(service, url)
        assert blocked in (survivor, replacement)
        assert int(get(url, "/")[1]) == ({survivor, replacement} - {blocked}).pop()
        project.open_gate(1)
        project.release_all(1)
        assert held.join() == (200, str(blocked))
        assert service.stop() == 0


def test_sigterm_lets_requests_in_flight_on_every_worker_finish(project: Project) -> None:
    with project.serve("--on", "tcp://127.0.0.1:0", "--workers", "2") as service:
        [url] = service.wait_ready(1)
        first, pid_a = hold(service, url)
        second, pid_b = hold(service, url)  # the first worker is blocked: the other took it
        assert pid_a != pid_b
        project.open_gate(2)
        for _ in range(2):
            service.wait_for_line(r"past the gate \d+")  # both in flight, loops running
        service.proc.send_signal(signal.SIGTERM)
        wait_for_lines(service, {  # the workers' lines and ours, in any order
            r"stopping \(SIGTERM\): 2 workers finish what is in flight": 1,
            r"waiting for 1 connection": 2})  # each worker drains its own
        with pytest.raises(ConnectionRefusedError):  # nobody holds the socket any more
            get(url, "/")
        project.release_all(2)
        assert {first.join(), second.join()} == {(200, str(pid_a)), (200, str(pid_b))}
        assert service.proc.wait(timeout=20) == 0  # stopping already: no second signal


def test_sigterm_to_every_process_at_once_is_still_graceful(project: Project) -> None:
    """systemd's default stop signals each process of the service, workers included."""
    with project.serve("--on", "tcp://127.0.0.1:0", "--workers", "2") as service:
        [url] = service.wait_ready(1)
        first, pid_a = hold(service, url)
        second, pid_b = hold(service, url)
        project.open_gate(2)
        for _ in range(2):
            service.wait_for_line(r"past the gate \d+")
        for pid in (pid_a, service.proc.pid, pid_b):
            os.kill(pid, signal.SIGTERM)
        for _ in range(2):
            service.wait_for_line(r"waiting for 1 connection")
        project.release_all(2)
        assert {first.join(), second.join()} == {(200, str(pid_a)), (200, str(pid_b))}
        assert service.proc.wait(timeout=20) == 0  # stopping already: no second signal
    assert not any("abort" in line for line in service.stderr), "\n".join(service.stderr)


def test_workers_zero_starts_one_per_core(project: Project) -> None:
    with project.serve("--on", "tcp://127.0.0.1:0", "--workers", "0") as service:
        started = service.wait_for_line(r"starting (\d+) workers")
        assert int(started.group(1)) == len(os.sched_getaffinity(0))
        [url] = service.wait_ready(1)
        assert get(url, "/")[0] == 200
        assert service.stop() == 0


def test_workers_from_the_environment(project: Project) -> None:
    service = Service(["serve", "holdapp:app", "--app-dir", str(project.root), "--on",
                       "tcp://127.0.0.1:0"], env={**project.env, "TRUNKLINE_SERVE_WORKERS": "2"})
    with service:
        assert service.wait_for_line(r"starting (\d+) workers").group(1) == "2"
        service.wait_ready(1)
        assert service.stop() == 0


def test_worker_0_serves_a_udp_address_beside_the_shared_ones() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free a moment ago
    with Service(["serve", "echo", "--on", "tcp://127.0.0.1:0", "--on",
                  f"udp://127.0.0.1:{port}", "--workers", "2"]) as service:
        owner = int(service.wait_for_line(r"worker 0 ready \(pid (\d+)\)").group(1))
        tcp_url, udp_url = service.wait_ready(2)
        assert udp_url == f"udp://127.0.0.1:{port}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(20)
            udp.sendto(b"ping", ("127.0.0.1", port))
            assert udp.recvfrom(100)[0] == b"ping"
        diag = subprocess.run(["ss", "-uanp", f"sport = :{port}"], capture_output=True,
                              text=True, check=False).stdout
        assert f"pid={owner}," in diag and diag.count("pid=") == 1  # worker 0 alone
        assert service.stop() == 0


@pytest.mark.parametrize(("on", "words"), [
    (["udp://127.0.0.1:0", "tcp://127.0.0.1:0"], "give it a port"),
    (["fifo:///tmp/trunkline-never.fifo"], "add such an address or use one worker"),
])
def test_addresses_workers_cannot_serve_are_refused(on: list[str], words: str) -> None:
    done = run(["serve", "echo", *[arg for url in on for arg in ("--on", url)],
                "--workers", "2"])
    assert done.returncode == 3, done.stderr
    assert words in done.stderr.decode()
    assert not Path("/tmp/trunkline-never.fifo").exists()


def test_a_broken_app_fails_once_with_the_single_process_status(project: Project) -> None:
    args = ["serve", "brokenapp:app", "--app-dir", str(project.root), "--on",
            "tcp://127.0.0.1:0", "--lifespan", "on"]
    single = run(args)
    many = run([*args, "--workers", "2"])
    assert single.returncode != 0
    assert many.returncode == single.returncode, many.stderr
    err = many.stderr.decode()
    assert err.count("no database") == 1, err  # worker 0 failed; no other was started
    assert "before it was ready; stopping" in err


@pytest.mark.parametrize(("args", "env", "words"), [
    (["--workers", "-1"], {}, "-1"),
    (["--workers", "two"], {}, "two"),
    (["--workers", "2", "--reload"], {}, "--workers and --reload cannot be combined"),
    (["--workers", "2", "--trace", "summary"], {}, "--trace"),
    ([], {"TRUNKLINE_SERVE_WORKERS": "many"}, "many"),
])
def test_bad_worker_counts_are_usage_errors(project: Project, args: list[str],
                                            env: dict[str, str], words: str) -> None:
    proc = subprocess.run(
        [*TRUNKLINE, "serve", "hello", "--on", "tcp://127.0.0.1:0", *args],
        capture_output=True, timeout=20, check=False, env={**os.environ, **env})
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr.decode()


def test_ctrl_c_waits_for_every_worker_and_a_second_ctrl_c_forces(project: Project) -> None:
    argv = [*TRUNKLINE, "serve", "holdapp:app", "--app-dir", str(project.root), "--on",
            "tcp://127.0.0.1:0", "--workers", "2", "--grace", "600"]
    with Terminal(argv, env={**os.environ, **project.env}) as term:
        url = term.expect(rb"listening on (tcp://\S+)").group(1).decode()
        held = Background(url, "/hold")
        term.expect(rb"held by \d+")
        project.open_gate(1)
        term.expect(rb"past the gate \d+")
        term.send(CTRL_C)  # reaches the supervisor only: the workers have their own session
        # the supervisor's line and the worker's come from two processes, in either order
        stopping = (r"stopping \(SIGINT\): 2 workers finish what is in flight \(up to 600 s\), "
                    r"Ctrl-C again to force")
        waiting = r"waiting for 1 connection"
        term.expect(rf"{stopping}[\s\S]*{waiting}|{waiting}[\s\S]*{stopping}")
        assert held.thread.is_alive()  # still waiting: the grace is 600 s
        term.send(CTRL_C)
        term.expect(r"SIGINT again: the workers abort")
        held.thread.join(20)
        assert not held.thread.is_alive() and held.result is None  # cut, not answered
        assert term.wait() == 0
