"""Worker processes: one service on every core, all accepting from the same sockets.

    async def start(addresses):             # runs in each worker process
        return await AppServer(app, *addresses).start()

    code = run_workers(start, ["tcp://127.0.0.1:8000", "unix:@app"], workers=0)  # 0: per core

``trunkline serve --workers N`` is this with the command's app. ``start(addresses)`` returns
a started server on a ``ServiceHost`` (``AppServer``, ``trunkline.serve``'s ``Server``,
``EchoServer``: anything ``WorkerServer`` describes).

Rules:
- Binding: every address one socket can serve from many processes (tcp, tls, unix path and
  abstract) is bound once, here, before any worker exists (``transport.bound``); a worker
  serves the inherited socket (``transport.listen`` finds it), so the kernel hands each new
  connection to one of the workers waiting in accept, and connections queue while a worker
  restarts. The socket files are this process's: removed when the stop begins.
- Not shared: a FIFO rendezvous and datagram sockets (udp, unixgram) are served by worker 0
  alone, which binds them as a single server would (a second reader would split their
  announcements or sessions). While worker 0 restarts, a FIFO client finds the rendezvous
  without a reader and fails; the new worker 0 reclaims it. A udp port 0 is refused (each
  start would pick another port). ``fd://`` sockets are inherited by every worker as they are.
- Forking: this process runs no event loop (a plain select loop on signals and readiness
  pipes), so nothing of a loop is copied into a child. Worker 0 starts first; once it is
  ready (its server started) the others start, so a broken app fails once: a worker that
  exits before the first readiness of all stops the start, and its exit status is returned.
  When every worker is ready, ``on_ready(urls)`` is called once.
- Each worker runs in its own session: a Ctrl-C at the terminal reaches this process only,
  which tells the workers (below). A worker watches a pipe only this process holds open:
  at its end (a stop, or this process killed) the worker stops gracefully.
- Restarts: a worker that exits is logged and replaced at once; when it keeps exiting
  within ``MIN_UPTIME`` of its start it is crash-looping and replaced after a delay that
  doubles each time (``RestartPolicy``), reset once a worker has lived ``MIN_UPTIME``.
- Stopping: the first SIGTERM/SIGINT closes the shared sockets (files removed), stops
  restarting and closes the pipe the workers watch: each worker stops as a single server
  does (requests in flight finish within ``grace``), also when it got the signal directly
  too (systemd signals every process of a service); a second signal sends the workers
  ``FORCE_SIGNAL`` (SIGQUIT): they abort. A worker's own second SIGTERM/SIGINT aborts too.
  A worker still there ``grace + KILL_AFTER`` seconds after the stop began is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import selectors
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import NoReturn, Protocol

from . import _loop
from .address import Address, FdAddress, UdpAddress, format_address, parse_address
from .errors import UnsupportedError
from .host import DEFAULT_SHUTDOWN_TIMEOUT
from .transport import ListenOptions
from .transport.bound import BoundSocket, bind_all, can_share, inherit
from .transport.fd import resolve_fd

log = logging.getLogger("trunkline.workers")

#: A worker that exits sooner than this after its start is crash-looping.
MIN_UPTIME = 1.0
FIRST_DELAY = 0.5  # seconds before the first restart of a crash-looping worker
MAX_DELAY = 30.0
#: How long a worker may outlive the grace of a stop before it is killed.
KILL_AFTER = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: What the supervisor sends its workers at a second stop signal: abort (gunicorn's "quick
#: shutdown" signal). The first stop is the closed pipe, so a worker that is also sent the
#: first signal directly (systemd signals every process of a service) still stops gracefully.
FORCE_SIGNAL = signal.SIGQUIT
_READY = b"R"


class WorkerServer(Protocol):
    """What ``start`` returns in a worker: a started server (``HostedServer`` fits)."""

    def request_shutdown(self) -> None: ...

    def abort(self) -> None: ...

    async def serve_forever(self, grace: float | None = None) -> None: ...

    async def aclose(self, grace: float | None = None) -> None: ...


StartWorker = Callable[[list[Address]], Awaitable[WorkerServer]]


def worker_count(requested: int) -> int:
    """``requested`` workers; 0 means one per core this process may run on."""
    if requested < 0:
        raise UnsupportedError(f"workers={requested}: give a count of at least 1, or 0 for "
                               "one per core")
    if requested == 0:
        return len(os.sched_getaffinity(0)) or os.cpu_count() or 1
    return requested


@dataclass
class RestartPolicy:
    """How long to wait before replacing a worker: not at all after one that lived at least
    ``min_uptime``, nor after the first that died younger; from the second young death in
    a row on, ``first_delay``, doubling each time, up to ``max_delay``."""

    min_uptime: float = MIN_UPTIME
    first_delay: float = FIRST_DELAY
    max_delay: float = MAX_DELAY
    failures: int = 0  # young deaths in a row

    def delay(self, uptime: float) -> float:
        if uptime >= self.min_uptime:
            self.failures = 0
            return 0.0
        self.failures += 1
        if self.failures == 1:  # once is not a loop (an admin's kill, a one-off crash)
            return 0.0
        return float(min(self.first_delay * 2.0 ** (self.failures - 2), self.max_delay))


@dataclass
class _Slot:
    index: int
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    pid: int | None = None
    started: float = 0.0
    ready_fd: int | None = None  # our end of the worker's readiness pipe
    ever_ready: bool = False
    restart_at: float | None = None


def run_workers(start: StartWorker, urls: Sequence[str | Address], *, workers: int = 0,
                options: ListenOptions = ListenOptions(),
                grace: float = DEFAULT_SHUTDOWN_TIMEOUT,
                on_ready: Callable[[list[str]], None] | None = None) -> int:
    """Bind ``urls``, run ``start`` in ``workers`` processes (0: one per core) until
    SIGTERM/SIGINT; the exit status (0 after a stop by signal). Call it from a program's
    main thread with no event loop running: it forks."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise UnsupportedError("run_workers forks processes: call it from a program's main "
                               "thread outside any event loop, not from async code")
    addresses = [parse_address(u) if isinstance(u, str) else u for u in urls]
    count = worker_count(workers)
    return Supervisor(start, addresses, bind_shared(addresses, options, workers=count),
                      workers=count, grace=grace, on_ready=on_ready).run()


def bind_shared(addresses: Sequence[Address], options: ListenOptions = ListenOptions(), *,
                workers: int = 2) -> list[BoundSocket]:
    """Bind the addresses workers share (``can_share``), in order, on a short-lived event
    loop that is closed again before any fork. Raises ``UnsupportedError`` for addresses
    ``workers`` processes cannot serve, else what binding raises."""
    for address in addresses:
        if isinstance(address, UdpAddress) and address.port == 0:
            raise UnsupportedError(f"{format_address(address)}: worker 0 binds udp "
                                   "addresses at each start, so port 0 would change; give "
                                   "it a port (udp://127.0.0.1:7001) or use one worker")
    if workers > 1 and not any(can_share(a) or isinstance(a, FdAddress) for a in addresses):
        raise UnsupportedError("workers need an address they can share (tcp, tls, unix or "
                               "fd); FIFOs and datagram sockets are served by one process: "
                               "add such an address or use one worker")
    return asyncio.run(bind_all([a for a in addresses if can_share(a)], options))


class Supervisor:
    """Forks the workers, restarts them, stops them (the rules are in the module's doc)."""

    def __init__(self, start: StartWorker, addresses: Sequence[Address],
                 shared: Sequence[BoundSocket], *, workers: int,
                 grace: float = DEFAULT_SHUTDOWN_TIMEOUT,
                 on_ready: Callable[[list[str]], None] | None = None) -> None:
        self.start = start
        self.shared = list(shared)
        self.grace = grace
        self.on_ready = on_ready
        self.slots = [_Slot(i) for i in range(workers)]
        # what each worker serves: bound addresses in the order asked; worker 0 all of them
        self.urls: list[str] = []
        self._all: list[Address] = []
        self._common: list[Address] = []
        try:
            self._plan(addresses)
        except BaseException:
            self._close_shared()
            raise
        self._signals: list[int] = []
        self._stop_begun = False
        self._kill_at: float | None = None
        self._announced = False
        self._code = 0
        self._watch = selectors.DefaultSelector()
        self._wake_r = self._wake_w = self._alive_r = self._alive_w = -1

    def _plan(self, addresses: Sequence[Address]) -> None:
        pending = list(self.shared)
        for address in addresses:
            if can_share(address):
                bound = pending.pop(0).address
                self._all.append(bound)
                self._common.append(bound)
                self.urls.append(format_address(bound))
            elif isinstance(address, FdAddress):
                by_number = FdAddress(fd=resolve_fd(address))  # LISTEN_PID is ours, not theirs
                self._all.append(by_number)
                self._common.append(by_number)
                self.urls.append(format_address(address))
            else:
                self._all.append(address)
                self.urls.append(format_address(address))

    # ---------------------------------------------------------------- this process

    def run(self) -> int:
        """Serve until stopped; the exit status."""
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._alive_r, self._alive_w = os.pipe2(os.O_CLOEXEC)
        self._watch.register(self._wake_r, selectors.EVENT_READ)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (*STOP_SIGNALS, signal.SIGCHLD)}
        previous_wakeup = signal.set_wakeup_fd(self._wake_w)
        try:
            log.info("starting %d workers (supervisor pid %d)", len(self.slots), os.getpid())
            self._spawn(self.slots[0])
            return self._supervise()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._close_shared()
            self._watch.close()
            for fd in (self._wake_r, self._wake_w, self._alive_r, self._alive_w):
                if fd >= 0:
                    os.close(fd)
            for slot in self.slots:
                self._close_ready(slot)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signals.append(sig)  # handled in the loop; the wakeup fd ends its select

    def _supervise(self) -> int:
        while True:
            for key, _ in self._watch.select(self._timeout()):
                if key.fd == self._wake_r:
                    _drain(self._wake_r)
                else:
                    self._on_readiness(key.data)
            signals, self._signals = self._signals, []
            for sig in signals:
                if sig in STOP_SIGNALS:
                    self._stop(signal.Signals(sig))
            self._reap()
            now = time.monotonic()
            live = [slot for slot in self.slots if slot.pid is not None]
            if self._stop_begun:
                if not live:
                    return self._code
                if self._kill_at is not None and now >= self._kill_at:
                    for slot in live:
                        log.warning("worker %d (pid %d) still running %g s after the stop "
                                    "began; killing it", slot.index, slot.pid,
                                    self.grace + KILL_AFTER)
                        _kill(slot.pid, signal.SIGKILL)  # type: ignore[arg-type]
                    self._kill_at = None
                continue
            for slot in self.slots:
                if slot.pid is None and slot.restart_at is not None and now >= slot.restart_at:
                    self._spawn(slot)

    def _timeout(self) -> float | None:
        times = [slot.restart_at for slot in self.slots
                 if slot.pid is None and slot.restart_at is not None]
        if self._kill_at is not None:
            times.append(self._kill_at)
        if not times:
            return None
        return max(0.0, min(times) - time.monotonic())

    def _spawn(self, slot: _Slot) -> None:
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child writes our buffered lines again
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            self._child(slot.index, ready_w)
        os.close(ready_w)
        slot.pid, slot.started, slot.ready_fd, slot.restart_at = (
            pid, time.monotonic(), ready_r, None)
        self._watch.register(ready_r, selectors.EVENT_READ, slot)

    def _on_readiness(self, slot: _Slot) -> None:
        assert slot.ready_fd is not None
        try:
            data = os.read(slot.ready_fd, 64)
        except OSError:
            data = b""
        if not data:  # the worker closed it: exited (reaped below) or went on serving
            self._close_ready(slot)
            return
        if _READY not in data or self._stop_begun:
            return
        slot.ever_ready = True
        log.info("worker %d ready (pid %d)", slot.index, slot.pid)
        if self._announced:
            return
        if slot.index == 0:
            for other in self.slots[1:]:
                self._spawn(other)
        if all(s.ever_ready for s in self.slots):
            self._announced = True
            if self.on_ready is not None:
                self.on_ready(list(self.urls))

    def _reap(self) -> None:
        for slot in self.slots:
            if slot.pid is None:
                continue
            try:
                pid, status = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = slot.pid, 0
            if pid == 0:
                continue
            self._close_ready(slot)
            slot.pid = None
            what = _describe_status(status)
            if self._stop_begun:
                log.debug("worker %d (pid %d) %s", slot.index, pid, what)
                continue
            if not self._announced:
                log.error("worker %d (pid %d) %s before it was ready; stopping", slot.index,
                          pid, what)
                self._code = os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1
                self._code = self._code or 1
                self._stop(None)
                continue
            uptime = time.monotonic() - slot.started
            delay = slot.policy.delay(uptime)
            if delay:
                log.warning("worker %d (pid %d) %s %.1f s after it started (%d times in a "
                            "row); starting another in %g s", slot.index, pid, what, uptime,
                            slot.policy.failures, delay)
            else:
                log.warning("worker %d (pid %d) %s; starting another", slot.index, pid, what)
            slot.restart_at = time.monotonic() + delay

    def _stop(self, sig: signal.Signals | None) -> None:
        """The first stop closes the sockets and the pipe every worker watches (each then
        stops gracefully, even one that got the same signal from elsewhere, as systemd
        sends it to every process); a later signal sends ``FORCE_SIGNAL`` (they abort).
        ``sig`` None: a failed start."""
        if not self._stop_begun:
            self._stop_begun = True
            self._close_shared()
            self._kill_at = time.monotonic() + self.grace + KILL_AFTER
            for slot in self.slots:
                slot.restart_at = None
            if self._alive_w >= 0:
                os.close(self._alive_w)
                self._alive_w = -1
            if sig is not None:
                live = sum(1 for slot in self.slots if slot.pid is not None)
                log.info("stopping (%s): %d workers finish what is in flight (up to %g s)%s",
                         sig.name, live, self.grace, _force_hint(sig))
            return
        if sig is not None:
            log.warning("%s again: the workers abort what is left", sig.name)
            for slot in self.slots:
                if slot.pid is not None:
                    _kill(slot.pid, FORCE_SIGNAL)

    def _close_shared(self) -> None:
        for bound in self.shared:
            bound.close()

    def _close_ready(self, slot: _Slot) -> None:
        if slot.ready_fd is not None:
            if self._watch.get_map() is not None:
                self._watch.unregister(slot.ready_fd)
            os.close(slot.ready_fd)
            slot.ready_fd = None

    # ---------------------------------------------------------------- a worker

    def _child(self, index: int, ready_w: int) -> NoReturn:
        """In the forked worker: serve until stopped, then exit (never return)."""
        code = 1
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for slot in self.slots:
                if slot.ready_fd is not None:
                    os.close(slot.ready_fd)
            self._watch.close()  # our copy of the epoll descriptor
            for fd in (self._wake_r, self._wake_w, self._alive_w):
                if fd >= 0:
                    os.close(fd)
            inherit(self.shared)
            addresses = list(self._all if index == 0 else self._common)
            code = _loop.run(_serve_worker(self.start, addresses, self.grace, ready_w,
                                           self._alive_r))
        except SystemExit as exc:
            if isinstance(exc.code, str):
                log.error("%s", exc.code)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)


async def _serve_worker(start: StartWorker, addresses: list[Address], grace: float,
                        ready_fd: int, alive_fd: int) -> int:
    """Serve until the supervisor closes its pipe (or is gone) or a stop signal comes,
    then stop gracefully; a second stop signal, or ``FORCE_SIGNAL``, aborts what is left."""
    server = await start(addresses)
    loop = asyncio.get_running_loop()
    stopping = False

    signals = 0  # stop signals this worker got; the supervisor's pipe does not count

    def stop() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            server.request_shutdown()

    def supervisor_says_stop() -> None:  # readable only at EOF
        loop.remove_reader(alive_fd)
        if not stopping:
            log.debug("worker pid %d stopping: no new connections", os.getpid())
        stop()

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals
        signals += 1
        if sig == FORCE_SIGNAL or signals > 1:
            log.warning("worker pid %d aborting (%s)", os.getpid(), sig.name)
            stop()
            server.abort()
        else:
            log.info("worker pid %d stopping (%s): no new connections", os.getpid(), sig.name)
            stop()

    for sig in (*STOP_SIGNALS, FORCE_SIGNAL):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_reader(alive_fd, supervisor_says_stop)
    os.write(ready_fd, _READY)
    os.close(ready_fd)
    try:
        await server.serve_forever(grace)
    finally:
        if not stopping:
            loop.remove_reader(alive_fd)
        for sig in (*STOP_SIGNALS, FORCE_SIGNAL):
            loop.remove_signal_handler(sig)
        await server.aclose(grace)
    return 0


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def _force_hint(sig: signal.Signals) -> str:
    return ", Ctrl-C again to force" if sig == signal.SIGINT else f", {sig.name} again to force"


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


__all__ = ["KILL_AFTER", "MIN_UPTIME", "RestartPolicy", "StartWorker", "Supervisor",
           "WorkerServer", "bind_shared", "run_workers", "worker_count"]
