"""``trunkline relay -v`` / ``-x``: the traffic on stderr, as ``socat -v`` / ``-x`` show it.

Each chunk gets socat's header line, ``>`` for LISTEN side to TARGET side and ``<`` back::

    > 2026/12/06 21:57:00.506837  length=13 from=0 to=12  connection=1
    hello
    world..

``-v`` shows the bytes as text (a byte that is not printable ASCII, newline or tab shows as
``.``; socat turns ``\\r`` into ``\\r`` too). ``-x`` shows hex, 16 bytes a line; with ``-v``
too, each hex line has the text beside it and a ``--`` line ends the chunk, as socat's
``-v -x``. Where we differ from socat: the header names the connection (several may
interleave; socat forks a process per connection instead), a text chunk that does not end
with a newline gets one (socat runs the next header into it), and ``-x`` alone wraps at 16
bytes (socat writes the chunk on one line).
"""

from __future__ import annotations

import time
from collections.abc import Callable

_PRINTABLE = bytes(b if 0x20 <= b < 0x7f or b in (0x0a, 0x09, 0x0d) else 0x2e
                   for b in range(256))
_TEXT_COLUMN = bytes(b if 0x20 <= b < 0x7f else 0x2e for b in range(256))


def header(up: bool, length: int, offset: int, number: int, when: float) -> str:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(when))
    micros = int((when % 1) * 1_000_000)
    return (f"{'>' if up else '<'} {stamp}.{micros:06d}  length={length} from={offset} "
            f"to={offset + length - 1}  connection={number}\n")


def text_lines(data: bytes) -> str:
    text = data.translate(_PRINTABLE).decode("ascii")
    return text.replace("\r", "\\r") + ("" if text.endswith("\n") else "\n")


def hex_lines(data: bytes, with_text: bool) -> str:
    """16 bytes a line; with text, a line also ends after a newline byte (as socat)."""
    lines = []
    start = 0
    while start < len(data):
        end = min(start + 16, len(data))
        if with_text:
            newline = data.find(b"\n", start, end)
            if newline != -1:
                end = newline + 1
        chunk = data[start:end]
        hexed = " ".join(f"{b:02x}" for b in chunk)
        if with_text:
            lines.append(f" {hexed:<47}  {chunk.translate(_TEXT_COLUMN).decode('ascii')}\n")
        else:
            lines.append(f" {hexed}\n")
        start = end
    return "".join(lines) + ("--\n" if with_text else "")


def dumper(text: bool, hexdump: bool, write: Callable[[str], None]
           ) -> Callable[[int, bool, memoryview, int], None]:
    """An ``on_data`` for the relays that writes each chunk with ``write``."""
    def on_data(number: int, up: bool, data: memoryview, offset: int) -> None:
        chunk = bytes(data)
        body = hex_lines(chunk, text) if hexdump else text_lines(chunk)
        write(header(up, len(chunk), offset, number, time.time()) + body)

    return on_data


__all__ = ["dumper", "header", "hex_lines", "text_lines"]
