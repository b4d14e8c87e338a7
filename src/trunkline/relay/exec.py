"""A command as one end of a relayed connection (socat's ``EXEC:`` and ``SYSTEM:``).

Rules:
- One process per connection. Its stdin and stdout are one end of a Unix socket pair (as
  socat does), so the relay treats it as any stream: EOF from the client half-closes the
  pair and the command reads EOF on stdin; the command closing stdout (or exiting) is EOF
  to the client. stderr is the relay's own.
- No shell unless asked: ``ExecTarget.parse("exec:cat -u")`` splits the words as a shell
  would (``shlex``) and runs the program directly; ``system:CMD`` runs ``/bin/sh -c CMD``.
- Bounded: at most ``max_processes`` run at once (a client beyond that is closed at once
  and logged); a command still running after its connection closed gets ``SIGTERM``
  after ``linger`` seconds (at once when the relay is stopping) and ``SIGKILL`` after as
  long again; every process is reaped. A command that goes on after reading EOF (and
  neither writes nor exits) keeps its half-closed pair open, as any stream target may; the
  relay's stop (``--grace``) ends it. socat instead ends a pair 0.5 s after the first EOF
  (its ``-t``), which cuts off a command that answers after reading all its input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import socket
from dataclasses import dataclass, field

from ..errors import TransportError, UnsupportedError
from ..transport.base import ProtocolFactory

log = logging.getLogger("trunkline.relay")

#: Commands running at once per relay, unless told otherwise.
DEFAULT_MAX_PROCESSES = 64
#: Seconds a command may go on after its connection closed before SIGTERM (then SIGKILL).
DEFAULT_LINGER = 2.0


@dataclass(frozen=True)
class ExecTarget:
    """A command to run per connection: ``argv`` run directly, or ``shell`` text for sh."""

    argv: tuple[str, ...] = ()
    shell: str | None = None
    max_processes: int = DEFAULT_MAX_PROCESSES
    linger: float = DEFAULT_LINGER
    _running: list[int] = field(default_factory=lambda: [0], compare=False, repr=False)

    @classmethod
    def parse(cls, text: str, **kwargs: float | int) -> ExecTarget:
        """``exec:PROGRAM ARGS...`` (no shell) or ``system:SHELL COMMAND``."""
        scheme, _, command = text.partition(":")
        scheme = scheme.lower()
        if scheme not in ("exec", "system") or not command.strip():
            raise UnsupportedError(f"{text!r}: write exec:PROGRAM ARGS (run directly) or "
                                   "system:COMMAND (run by /bin/sh), e.g. exec:'cat -u'")
        if scheme == "system":
            return cls(shell=command, **kwargs)  # type: ignore[arg-type]
        try:
            argv = tuple(shlex.split(command))
        except ValueError as exc:
            raise UnsupportedError(f"{text!r}: {exc} (quote as a shell would)") from None
        return cls(argv=argv, **kwargs)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return f"system:{self.shell}" if self.shell is not None else \
            "exec:" + shlex.join(self.argv)

    async def end(self, process: asyncio.subprocess.Process, *, now: bool = False) -> None:
        """Reap ``process``; one still running ``linger`` s after its connection ended (at
        once when ``now``: the relay is stopping) is terminated, then killed."""
        how = "exited"
        linger = 0.0 if now else self.linger
        try:
            for action, name in ((None, "exited"), (process.terminate, "terminated"),
                                 (process.kill, "killed")):
                if action is not None:
                    how = name
                    with contextlib.suppress(ProcessLookupError):
                        action()
                try:
                    await asyncio.wait_for(asyncio.shield(process.wait()), linger)
                    break
                except TimeoutError:
                    linger = self.linger
                    continue
            else:
                await process.wait()
        finally:
            self._running[0] -= 1
        log.info("%s (pid %d) %s, status %s", self.url, process.pid, how, process.returncode)


async def open_exec(target: ExecTarget, factory: ProtocolFactory
                    ) -> asyncio.subprocess.Process:
    """Start the command with its stdin and stdout on a socket pair whose other end gets a
    protocol from ``factory``; the process (the caller reaps it with ``target.end``)."""
    if target._running[0] >= target.max_processes:
        raise TransportError(f"{target.url}: {target.max_processes} commands are running "
                             "already (--max-processes)")
    target._running[0] += 1  # now, before the await: two clients at once count as two
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if target.shell is not None:
            process = await asyncio.create_subprocess_shell(
                target.shell, stdin=theirs.fileno(), stdout=theirs.fileno())
        else:
            process = await asyncio.create_subprocess_exec(
                *target.argv, stdin=theirs.fileno(), stdout=theirs.fileno())
    except BaseException as exc:
        target._running[0] -= 1
        ours.close()
        if isinstance(exc, OSError):
            raise TransportError(exc.errno, f"cannot run {target.url}: {exc.strerror}") \
                from exc
        raise
    finally:
        theirs.close()
    try:
        ours.setblocking(False)
        await asyncio.get_running_loop().create_unix_connection(factory, sock=ours)
    except BaseException:
        ours.close()
        await target.end(process)
        raise
    return process


__all__ = ["DEFAULT_LINGER", "DEFAULT_MAX_PROCESSES", "ExecTarget", "open_exec"]
