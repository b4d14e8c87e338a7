"""Real etcd members (Debian's ``/usr/bin/etcd``) for the registry tests.

Each member gets free ports on 127.0.0.1 (or a given address, e.g. inside a network
namespace) and a temp data dir. Readiness: the member's own "ready to serve client requests"
log line, then one answer to a status call through aetcd; never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ETCD = shutil.which("etcd")
# etcd 3.4 with the zap logger says "serving client traffic insecurely" once ReadyNotify
# fired (it has joined the cluster and published itself); older loggers said the other line
READY = ("serving client traffic", "ready to serve client requests")
DEADLINE = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Member:
    name: str
    host: str
    client_port: int
    peer_port: int
    data_dir: Path
    prefix: Sequence[str] = ()  # e.g. ["nsenter", "--net=/run/netns/x"]
    proc: subprocess.Popen[bytes] | None = None
    log: list[str] = field(default_factory=list)
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _reader: threading.Thread | None = None

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    def start(self, initial_cluster: str, token: str) -> None:
        assert ETCD is not None
        args = [*self.prefix, ETCD, "--name", self.name, "--data-dir", str(self.data_dir),
                "--listen-client-urls", self.client_url,
                "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", token,
                # short election timeout: a stopped member's absence is noticed fast
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--logger", "zap", "--log-outputs", "stderr"]
        self._lines = queue.Queue()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.log.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_ready(self, deadline: float) -> None:
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(f"etcd {self.name} not ready; log tail: "
                                     f"{self.log[-5:]}") from None
            if line is None:
                raise AssertionError(f"etcd {self.name} exited: {self.log[-5:]}")
            if any(text in line for text in READY):
                return

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            # the reader ends at the pipe's EOF: closing the pipe under it raised in its thread
            self._reader.join(10)
            self._reader = None
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    """``size`` members on ``host``; ``url()`` is the registry URL for all of them."""

    def __init__(self, size: int = 1, host: str = "127.0.0.1", prefix: Sequence[str] = (),
                 ports: Sequence[tuple[int, int]] | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tl-etcd-"))
        self.token = "tl-" + secrets.token_hex(4)
        self.members = []
        for i in range(size):
            client, peer = ports[i] if ports else (free_port(host), free_port(host))
            self.members.append(Member(f"m{i}", host, client, peer, self.root / f"m{i}",
                                       prefix))
        self.initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def url(self, prefix: str = "") -> str:
        return "etcd://" + ",".join(m.endpoint for m in self.members) + prefix

    def start(self, *which: int) -> None:
        """Start the members (all by default) and wait until each serves and answers."""
        chosen = [self.members[i] for i in which] if which else self.members
        for member in chosen:
            member.start(self.initial, self.token)
        deadline = time.monotonic() + DEADLINE
        for member in chosen:
            member.wait_ready(deadline)
        if not any(m.prefix for m in chosen):  # in a namespace: not reachable from here
            # on a thread of its own: the caller may be inside an event loop already
            failure: list[BaseException] = []

            def check() -> None:
                try:
                    asyncio.run(self._answers(chosen))
                except BaseException as exc:
                    failure.append(exc)

            thread = threading.Thread(target=check)
            thread.start()
            thread.join(DEADLINE)
            if failure:
                raise failure[0]

    async def _answers(self, members: Sequence[Member]) -> None:
        import aetcd

        for member in members:
            host, port = member.endpoint.rsplit(":", 1)
            async with aetcd.Client(host=host, port=int(port), timeout=5) as client:
                await client.status()

    def stop(self, *which: int) -> None:
        for i in which or range(len(self.members)):
            self.members[i].stop()

    def wipe(self) -> None:
        """Remove the (stopped) members' data: the next start is a new, empty cluster."""
        for member in self.members:
            assert not member.running
            shutil.rmtree(member.data_dir, ignore_errors=True)
        self.token = "tl-" + secrets.token_hex(4)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
