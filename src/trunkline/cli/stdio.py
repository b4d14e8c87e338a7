"""Asynchronous stdin and stdout for commands that move bytes (``connect``).

Pipes and sockets go through the loop (``connect_read_pipe``/``connect_write_pipe``);
regular files and ``/dev/null``, which epoll cannot watch, are read in a thread and written
directly (a regular file never makes a write wait).

A terminal is read through the loop but written directly: a write pipe transport watches its
descriptor for readability to notice a closed reader, and on a terminal (stdin and stdout are
one device) that read takes the user's typed input, and the Ctrl-D, away from stdin. Writes
to a terminal wait on ``add_writer`` when it is full (stdin made the shared description
non-blocking).
"""

from __future__ import annotations

import asyncio
import os
import stat

CHUNK = 256 * 1024
LINE_LIMIT = 1024 * 1024


def _is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _pollable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))


async def open_stdin(fd: int = 0) -> asyncio.StreamReader:
    """A ``StreamReader`` over ``fd``; EOF at the end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    if _pollable(fd):
        pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        return reader

    async def pump() -> None:
        try:
            while chunk := await loop.run_in_executor(None, os.read, fd, CHUNK):
                reader.feed_data(chunk)
        except OSError as exc:
            reader.set_exception(exc)
            return
        reader.feed_eof()

    task = loop.create_task(pump())
    reader._trunkline_pump = task  # type: ignore[attr-defined]  # keep a reference
    return reader


class _WriteProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.lost = False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc or BrokenPipeError("stdout was closed")
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Output:
    """stdout with ``write``/``drain``; a closed reader (``| head``) raises BrokenPipeError."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._transport: asyncio.WriteTransport | None = None
        self._protocol: _WriteProtocol | None = None
        self._pending = bytearray()  # direct writes (a terminal) the device was not ready for

    @classmethod
    async def open(cls, fd: int = 1) -> Output:
        out = cls(fd)
        if _pollable(fd) and not _is_terminal(fd):
            loop = asyncio.get_running_loop()
            pipe = os.fdopen(os.dup(fd), "wb", buffering=0)
            out._transport, out._protocol = await loop.connect_write_pipe(_WriteProtocol, pipe)
        return out

    def write(self, data: bytes) -> None:
        if self._transport is None:
            self._pending += data
            self._flush()
            return
        assert self._protocol is not None
        if self._protocol.lost:
            raise BrokenPipeError("stdout was closed")
        self._transport.write(data)

    def _flush(self) -> None:
        pending = self._pending
        while pending:
            try:
                del pending[:os.write(self.fd, pending)]
            except BlockingIOError:
                return  # drain() waits for room

    async def _wait_writable(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            ready = loop.create_future()
            loop.add_writer(self.fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_writer(self.fd)
            self._flush()

    async def drain(self) -> None:
        p = self._protocol
        if p is None:
            if self._pending:
                await self._wait_writable()
            return
        if p.lost:
            raise BrokenPipeError("stdout was closed")
        if p.paused:
            p.waiter = asyncio.get_running_loop().create_future()
            await p.waiter
            if p.lost:
                raise BrokenPipeError("stdout was closed")

    async def aclose(self) -> None:
        """Flush what is queued (the pipe transport does it on close), then wait for that."""
        p = self._protocol
        if self._transport is None or p is None:
            if self._pending:
                await self._wait_writable()
            return
        self._transport.close()
        while not p.lost:
            p.waiter = asyncio.get_running_loop().create_future()
            await p.waiter
