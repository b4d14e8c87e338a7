"""``trunkline serve --reload``: restart the server when a watched file changes (watchfiles).

This process never imports the app. It starts the same ``trunkline serve`` command as a
child process, passes its stderr through, watches the directories, and on a change stops
the child (SIGTERM: a graceful stop within ``--grace``) and starts a new one, which imports
every module afresh.

Addresses stay the same across restarts: the child's "listening on URL" lines tell the real
port of a ``:0`` address, and later children are given those URLs (``_TRUNKLINE_RELOAD_ON``).
uvicorn binds its socket once in the watching process and hands it to each child, so no
client is refused while a child restarts; here a connection that arrives in the moment
between the old child closing and the new one binding is refused. (A socket bound apart
from serving, ``transport.bind``, is coming with ``--workers``; the watcher can then hold
the sockets the same way.)

Signals: the child runs in its own session (no terminal), so a Ctrl-C at the terminal reaches only
this process, which passes each SIGINT/SIGTERM on: the first stops the child gracefully
(it logs what it waits for), a second aborts it, as without ``--reload``. The child's
stdin is a pipe from here; when it reads EOF (this process died) it stops too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import click

from .. import _loop
from ..address import Address, format_address, parse_address
from .exits import Exit

F = TypeVar("F", bound=Callable[..., Any])

#: Set by the watcher for its child: the URLs to serve on, as JSON (ports pinned).
CHILD_ENV = "_TRUNKLINE_RELOAD_ON"
_READY = re.compile(rb"^listening on (\S+)")
#: How long a child gets past its --grace before it is killed.
KILL_AFTER = 5.0

RELOAD_HELP = """\b
--reload (development): watch --reload-dir (default: the current directory, or
--app-dir) and restart the server when a .py file (or a --reload-include pattern)
changes; .venv, __pycache__, .git and editor files are ignored. The addresses stay
the same across restarts (port 0 keeps the port of the first start); a connection
that arrives during the restart itself is refused (uvicorn keeps its socket open
instead). A start that fails (a syntax error) waits for the next change."""


def reload_options(command: F) -> F:
    options = [
        click.option("--reload", is_flag=True,
                     help="Restart when a watched file changes (development; needs "
                          "watchfiles). See below."),
        click.option("--reload-dir", type=click.Path(exists=True, file_okay=False),
                     multiple=True, metavar="DIR",
                     help="Watch DIR (repeatable; default the current directory)."),
        click.option("--reload-include", multiple=True, metavar="GLOB",
                     help="Also restart when a file matching GLOB changes (e.g. '*.html')."),
        click.option("--reload-exclude", multiple=True, metavar="GLOB",
                     help="Ignore files matching GLOB (e.g. 'test_*.py')."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def in_reload_child() -> bool:
    """True in the server a watcher started (it runs the watcher's own command line, whose
    --reload it ignores)."""
    return CHILD_ENV in os.environ


def reload_child_addresses(addresses: list[Address]) -> list[Address]:
    """In a ``--reload`` child: the addresses its watcher pinned; otherwise ``addresses``."""
    pinned = os.environ.get(CHILD_ENV)
    if pinned is None:
        return addresses
    return [parse_address(url) for url in json.loads(pinned)]


class _Stoppable(Protocol):
    def request_shutdown(self) -> None: ...


def stop_with_parent(server: _Stoppable) -> None:
    """In a ``--reload`` child: stop gracefully when the watcher's pipe on stdin closes."""
    if CHILD_ENV not in os.environ:
        return
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            server.request_shutdown()

    os.set_blocking(0, False)
    loop.add_reader(0, readable)


def run_reloader(addresses: Sequence[Address], dirs: Sequence[str], include: Sequence[str],
                 exclude: Sequence[str], grace: float) -> int:
    """Watch and restart until stopped; the exit status of the last child."""
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        raise click.UsageError("--reload needs watchfiles: pip install "
                               "'trunkline[reload]'") from None
    watched = [os.path.abspath(d) for d in dirs]
    return _loop.run(_Reloader([format_address(a) for a in addresses], watched,
                               include, exclude, grace).run())


def _note(message: str) -> None:
    click.echo(f"trunkline serve: {message}", err=True)


class _Reloader:
    def __init__(self, urls: list[str], dirs: list[str], include: Sequence[str],
                 exclude: Sequence[str], grace: float) -> None:
        self.urls = urls
        self.dirs = dirs
        self.include = ["*.py", *include]
        self.exclude = list(exclude)
        self.grace = grace
        self.child: asyncio.subprocess.Process | None = None
        self.ready = 0  # readiness lines of the current child
        self.stopping = asyncio.Event()
        self.changes: asyncio.Queue[list[str]] = asyncio.Queue()

    def _wanted(self, change: Any, path: str) -> bool:
        import watchfiles

        name = os.path.basename(path)
        return (watchfiles.DefaultFilter()(change, path)
                and any(fnmatch.fnmatch(name, p) for p in self.include)
                and not any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p)
                            for p in self.exclude))

    async def _watch(self) -> None:
        import watchfiles

        async for changes in watchfiles.awatch(*self.dirs, watch_filter=self._wanted,
                                               stop_event=self.stopping):
            self.changes.put_nowait(sorted(os.path.relpath(p) for _, p in changes))

    def _on_signal(self, sig: signal.Signals) -> None:
        self.stopping.set()
        child = self.child
        if child is not None and child.returncode is None:
            child.send_signal(sig)  # the first stops it gracefully, a second aborts it

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        watcher = loop.create_task(self._watch())
        await asyncio.sleep(0)  # the watch is set up before the first child starts
        _note(f"watching {', '.join(self.dirs)} for changes (--reload)")
        first = True
        try:
            while True:
                code = await self._run_child(first)
                if code is not None:
                    return code
                if self.stopping.is_set():  # stopped while restarting
                    return Exit.OK
                first = False
        finally:
            self.stopping.set()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher

    async def _run_child(self, first: bool) -> int | None:
        """One child's life. The exit status to end with, or None to start another."""
        env = dict(os.environ)
        env[CHILD_ENV] = json.dumps(self.urls)
        env.pop("TRUNKLINE_SERVE_RELOAD", None)
        self.ready = 0
        child = self.child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "trunkline", *sys.argv[1:], env=env,
            stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
        relay = asyncio.ensure_future(self._pass_stderr(child))
        exited = asyncio.ensure_future(child.wait())
        change = asyncio.ensure_future(self.changes.get())
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait([exited, change, stop], return_when=asyncio.FIRST_COMPLETED)
            if stop.done() or (exited.done() and self.stopping.is_set()):
                return await self._finish(child, relay)
            if change.done():
                _note(f"{', '.join(change.result()[:3])} changed; restarting")
                await self._stop_child(child, relay)
                return None
            code = await self._finish(child, relay)
            if first and self.ready == 0 and code in (Exit.CANNOT_LISTEN, Exit.BAD_ADDRESS):
                return code  # no edit makes an address usable
            _note(f"the server exited with status {code}; waiting for a change to restart it")
            change.cancel()
            change = asyncio.ensure_future(self.changes.get())
            await asyncio.wait([change, stop], return_when=asyncio.FIRST_COMPLETED)
            return code if stop.done() else None
        finally:
            for task in (exited, change, stop):
                task.cancel()

    async def _pass_stderr(self, child: asyncio.subprocess.Process) -> None:
        assert child.stderr is not None
        out = sys.stderr.buffer
        while line := await child.stderr.readline():
            match = _READY.match(line)
            if match and self.ready < len(self.urls):
                self.urls[self.ready] = match.group(1).decode()  # the port a :0 got
                self.ready += 1
            out.write(line)
            out.flush()

    async def _finish(self, child: asyncio.subprocess.Process, relay: asyncio.Future[None]
                      ) -> int:
        code = await child.wait()
        with contextlib.suppress(Exception):
            await relay
        if child.stdin is not None:
            child.stdin.close()
        return code if code >= 0 else 128 - code  # killed by a signal: 128+N, as a shell

    async def _stop_child(self, child: asyncio.subprocess.Process,
                          relay: asyncio.Future[None]) -> None:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(child.wait()), self.grace + KILL_AFTER)
            except TimeoutError:
                child.kill()
        await self._finish(child, relay)


__all__ = ["CHILD_ENV", "RELOAD_HELP", "in_reload_child", "reload_child_addresses",
           "reload_options", "run_reloader", "stop_with_parent"]
