"""Where ``trunkline call`` writes a response, and how it shows it to a person.

- The body goes to stdout, or to ``-o FILE``/``-O`` (the file is created when the body starts,
  so ``--fail`` leaves none behind). Bytes are written as they come.
- ``--compressed``: gzip and deflate bodies are decoded as they come (zlib; brotli is not
  asked for, as no maintained brotli package is a dependency).
- On a terminal, a JSON body is shown indented and coloured (httpie does this); piped or to a
  file it stays byte for byte. ``--no-color``/``NO_COLOR`` keep the indent, drop the colour.
- Writing to a file from a terminal shows a progress meter on stderr (rich), unless ``-s``.
- ``-v`` tells the connection's steps as they happen (``* Trying 127.0.0.1:8000...``,
  ``* Connected to ...``), from the trace events of the call.
"""

from __future__ import annotations

import json
import os
import zlib
from typing import IO, Any, cast

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..address import StreamAddress, TcpAddress, UnixAddress, format_address
from ..trace.events import Sink, Step, TraceEvent

#: Largest body held back to be shown as indented JSON; a bigger one is written as it came.
PRETTY_LIMIT = 8 * 1024 * 1024


def color_wanted(stream: IO[Any]) -> bool:
    """Colour for a person at a terminal, never into a pipe; NO_COLOR (any value but empty,
    as no-color.org says) and ``TERM=dumb`` switch it off."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def is_terminal(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Decoder:
    """``Content-Encoding`` gzip/deflate undone chunk by chunk (``--compressed``)."""

    SUPPORTED = ("gzip", "x-gzip", "deflate")

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        # gzip: a gzip header; deflate: a zlib stream, though some servers send raw deflate
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS if "gzip" in encoding
                                     else zlib.MAX_WBITS)
        self._first = encoding == "deflate"

    def decode(self, data: bytes) -> bytes:
        try:
            out = self._z.decompress(data)
        except zlib.error:
            if not self._first:
                raise
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, no zlib header
            out = self._z.decompress(data)
        self._first = False
        return out

    def flush(self) -> bytes:
        return self._z.flush()


class BodyOutput:
    """The destination of one response body."""

    def __init__(self, path: str | None, stdout: IO[bytes], stderr: IO[str], *,
                 pretty: bool, progress: bool) -> None:
        self.path = path
        self.stdout = stdout
        self.stderr = stderr
        self.pretty = pretty and path is None and is_terminal(stdout)
        self.show_progress = progress and path is not None and is_terminal(stderr)
        self._file: IO[bytes] | None = None
        self._held = bytearray()
        self._holding = False
        self._progress: Progress | None = None
        self._task: Any = None

    @property
    def target(self) -> IO[bytes]:
        if self._file is None:
            self._file = self.stdout if self.path is None else open(  # noqa: SIM115
                self.path, "wb")
        return self._file

    def write_head(self, head: bytes) -> None:
        self.target.write(head)
        self.target.flush()

    def start(self, content_type: str, length: int | None) -> None:
        """The body begins: decide whether to hold it for pretty JSON; start the meter."""
        self._holding = self.pretty and "json" in content_type.lower() and (
            length is None or length <= PRETTY_LIMIT)
        if self.show_progress:
            self._progress = Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                      TimeRemainingColumn(),
                                      console=Console(file=self.stderr, stderr=True),
                                      transient=False)
            self._progress.start()
            self._task = self._progress.add_task("body", total=length)
        self.target  # noqa: B018  (create the file now, even for an empty body)

    def write(self, data: bytes) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, len(data))
        if self._holding:
            self._held += data
            if len(self._held) <= PRETTY_LIMIT:
                return
            self._holding = False  # too big to show nicely: out it goes as it is
            data, self._held = bytes(self._held), bytearray()
        self.target.write(data)

    def finish(self) -> None:
        if self._holding:
            self._holding = False
            self._show_json(bytes(self._held))
        if self._file is not None:
            self._file.flush()
        self._stop_progress()

    def _show_json(self, data: bytes) -> None:
        try:
            value = json.loads(data)
        except ValueError:
            self.target.write(data)  # says JSON, is not: show what came
            return
        self.target.flush()
        console = Console(file=cast(IO[str], _TextOut(self.target)),
                          force_terminal=color_wanted(self.stdout),
                          no_color=not color_wanted(self.stdout), soft_wrap=True)
        console.print_json(data=value, indent=4)

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def close(self) -> None:
        self._stop_progress()
        if self._file is not None and self._file is not self.stdout:
            self._file.close()


class _TextOut:
    """A text view of a binary stream, for rich."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(text.encode())
        return len(text)

    def flush(self) -> None:
        self.raw.flush()

    def isatty(self) -> bool:
        return is_terminal(self.raw)


def verbose_sink(err: IO[str], dial: StreamAddress) -> Sink:
    """curl -v's connection lines, from the call's trace events as they happen."""
    port = dial.port if isinstance(dial, TcpAddress) else 80

    def show(event: TraceEvent) -> None:
        if event.side != "client":
            return
        detail = event.detail
        if event.step is Step.DISCOVER:
            stale = " (stale: the registry is unreachable)" if detail.get("stale") else ""
            if detail.get("failed"):
                err.write(f"*   {detail['failed']} failed ({detail.get('error')}); next\n")
            err.write(f"*   Service {detail.get('service')}: {detail.get('instances')} "
                      f"instance(s) in {detail.get('backend')}{stale}; chose "
                      f"{detail.get('chosen')}: {detail.get('reason')}\n")
        elif event.step is Step.SOCKET:
            where = detail.get("peer") or _where(dial)
            err.write(f"*   Trying {where}...\n")
        elif event.step is Step.CONNECT:
            peer = str(detail.get("peer") or _where(dial))
            if isinstance(dial, TcpAddress):  # curl shows the IP without its port here
                peer = peer.rpartition(":")[0].strip("[]") or peer
            name = dial.host if isinstance(dial, TcpAddress) else "localhost"
            shown = f"[{name}]" if ":" in name else name
            err.write(f"* Connected to {shown} ({peer}) port {port} (#{event.conn - 1})\n")
        elif event.step is Step.TLS:
            err.write(f"* TLS handshake done: {detail.get('version', 'TLS')}\n")
        elif event.step is Step.REUSE:
            err.write(f"* Re-using existing connection #{event.conn - 1}\n")
        else:
            return
        err.flush()

    return show


def _where(address: StreamAddress) -> str:
    if isinstance(address, UnixAddress):
        return ("@" + address.path) if address.abstract else address.path
    return format_address(address)


__all__ = ["BodyOutput", "Decoder", "color_wanted", "is_terminal", "verbose_sink"]
