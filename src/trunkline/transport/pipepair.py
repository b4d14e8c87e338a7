"""Two one-way pipes joined into one duplex ``asyncio.Transport``.

Rules:
- Each direction is the loop's own pipe transport (``connect_read_pipe`` /
  ``connect_write_pipe``: libuv on uvloop, selector-based on the stdlib loop); this class only
  joins them, so both loops behave alike.
- ``write_eof`` closes our write pipe once its buffer is flushed (the peer reads EOF); we keep
  reading. ``connection_lost`` is called once, when both directions are done.
- Bytes go to the protocol through ``reads.feeder``: ``data_received`` when it has one (plain
  ``Protocol``, ``StreamProtocol``), else copied into ``get_buffer`` of a pure
  ``BufferedProtocol``.
- Once started, the hot paths skip this layer: the read pipe's transport calls the protocol's
  feeder directly, and ``write`` is the write pipe's own (an instance attribute, dropped as
  soon as writing is no longer plain: ``write_eof``, ``close``, ``abort``, a lost pipe).
- Identity lives in ``extra`` (``LOCAL``, ``PEER``, ``CREDENTIALS``, ``KIND`` from ``base``).
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from .base import LOCAL
from .reads import feeder

PIPE_READ_SIZE = 65536  # a pipe holds 64 KiB by default; larger reads only cost malloc time


class DuplexPipeTransport(asyncio.Transport):
    """A duplex transport over two pipes: the loop's read-pipe and write-pipe transports."""

    def __init__(self, protocol: asyncio.BaseProtocol, extra: dict[str, Any]) -> None:
        super().__init__(extra)
        self._protocol = protocol
        self._feed = feeder(protocol)
        self._reader: asyncio.ReadTransport | None = None
        self._writer: asyncio.WriteTransport | None = None
        self._pending: list[bytes] | None = []  # bytes read before connection_made
        self._pending_eof = False
        self._read_open = self._write_open = True
        self._eof_written = self._closing = self._lost = False
        self._exc: BaseException | None = None

    # ---- called by the two halves

    def _start(self, reader: asyncio.ReadTransport, writer: asyncio.WriteTransport) -> None:
        self._reader, self._writer = reader, writer
        self._protocol.connection_made(self)
        pending, self._pending = self._pending or [], None
        if not self._closing:  # a protocol may refuse the connection in connection_made
            for chunk in pending:
                self._feed(chunk)
            if self._pending_eof:
                self._eof()
            self._direct_read()
            self._direct_write()
        self._maybe_lost()

    def _direct_read(self) -> None:
        """Let the read pipe hand bytes straight to the protocol: two Python calls fewer per
        read than going through ``_Half.data_received`` and ``_data``."""
        reader = self._reader
        if self._read_open and reader is not None:
            half = reader.get_protocol()
            assert isinstance(half, _Half)
            half.data_received = self._feed  # type: ignore[method-assign, assignment]
            reader.set_protocol(half)  # uvloop keeps the bound method it looked up: refresh it

    def _direct_write(self) -> None:
        """``write`` is the write pipe's own while writing is plain, else ours (which checks)."""
        writer = self._writer
        if (writer is not None and self._write_open and not self._eof_written
                and not self._closing):
            self.write = writer.write  # type: ignore[method-assign]
        else:
            self.__dict__.pop("write", None)

    def _data(self, data: bytes) -> None:
        if self._pending is not None:
            self._pending.append(data)
        else:
            self._feed(data)

    def _eof(self) -> None:
        if self._pending is not None:
            self._pending_eof = True
        else:
            eof_received = getattr(self._protocol, "eof_received", None)
            if eof_received is None or not eof_received():
                self.close()

    def _side_lost(self, read: bool, exc: BaseException | None) -> None:
        if read:
            self._read_open = False
        else:
            self._write_open = False
            self._direct_write()
        if exc is not None:
            self._exc = self._exc or exc
            self.abort()  # a failed pipe means the peer is gone: drop the other one too
        self._maybe_lost()

    def _maybe_lost(self) -> None:
        if self._read_open or self._write_open or self._lost or self._pending is not None:
            return
        self._lost = self._closing = True
        self._protocol.connection_lost(self._exc)  # type: ignore[arg-type]

    # ---- asyncio.Transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._write_open and self._writer is not None:
            self._writer.write(data)

    def write_eof(self) -> None:
        if self._eof_written or not self._write_open or self._writer is None:
            return
        self._eof_written = True
        self._direct_write()
        self._writer.close()  # flush, then close: the peer reads EOF (uv_shutdown fails on pipes)

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._direct_write()
        if self._read_open and self._reader is not None:
            self._reader.close()
        if self._write_open and self._writer is not None:
            self._writer.close()

    def abort(self) -> None:
        self._closing = True
        self._direct_write()
        if self._read_open and self._reader is not None:
            self._reader.close()
        if self._write_open and self._writer is not None:
            self._writer.abort()

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        if self._read_open and self._reader is not None:
            self._reader.pause_reading()

    def resume_reading(self) -> None:
        if self._read_open and self._reader is not None:
            self._reader.resume_reading()

    def is_reading(self) -> bool:
        return self._read_open and self._reader is not None and self._reader.is_reading()

    def get_write_buffer_size(self) -> int:
        if self._write_open and self._writer is not None:
            return self._writer.get_write_buffer_size()
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self._writer is not None:
            self._writer.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        if self._writer is not None:
            return self._writer.get_write_buffer_limits()
        return (0, 0)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._feed = feeder(protocol)
        if self._pending is None:  # started: the read pipe feeds the new protocol directly
            self._direct_read()

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def __repr__(self) -> str:
        state = "closed" if self._lost else "closing" if self._closing else "open"
        return f"<DuplexPipeTransport {self.get_extra_info(LOCAL)} {state}>"


class _Half(asyncio.Protocol):
    """Protocol for one of the two pipe transports; forwards to the ``DuplexPipeTransport``."""

    def __init__(self, owner: DuplexPipeTransport, read: bool) -> None:
        self._owner = owner
        self._read = read

    def data_received(self, data: bytes) -> None:
        self._owner._data(data)

    def eof_received(self) -> bool:
        self._owner._eof()
        return False  # the read pipe is done either way

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._side_lost(self._read, exc)

    def pause_writing(self) -> None:
        self._owner._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._owner._protocol.resume_writing()


async def attach_pipes(rfd: int, wfd: int, protocol: asyncio.BaseProtocol, extra: dict[str, Any]
                  ) -> DuplexPipeTransport:
    """Join two open pipe descriptors into a ``DuplexPipeTransport``; owns (closes) both fds."""
    loop = asyncio.get_running_loop()
    transport = DuplexPipeTransport(protocol, extra)
    rpipe, wpipe = io.FileIO(rfd, "rb"), io.FileIO(wfd, "wb")
    try:
        reader, _ = await loop.connect_read_pipe(lambda: _Half(transport, True), rpipe)
    except BaseException:
        rpipe.close()
        wpipe.close()
        raise
    if hasattr(reader, "max_size"):  # stdlib loop: read 64 KiB, not 256 KiB (CPython #85451)
        setattr(reader, "max_size", PIPE_READ_SIZE)  # noqa: B010
    try:
        writer, _ = await loop.connect_write_pipe(lambda: _Half(transport, False), wpipe)
    except BaseException:
        reader.close()
        wpipe.close()
        raise
    transport._start(reader, writer)
    return transport
