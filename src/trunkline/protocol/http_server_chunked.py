"""Where a chunked request body ends, found by our own scan (server core, sans-I/O).

The HTTP/1.1 server core (``http_server.py``) feeds httptools a body only in spans whose end
it knows, so the next pipelined head is always its own to check first. For a chunked body
this scanner tells how far the framing extends in the bytes at hand: chunk size lines,
chunk data and its CRLF, trailer fields and the blank line that ends the message. llhttp
still validates those bytes when they are fed; the scanner enforces what llhttp does not
bound: the length of a chunk size line, the decoded body size and the trailer limits.
"""

from __future__ import annotations

import re

from .http_server_events import HttpLimits, Reject

_DATA, _DATA_END, _SIZE, _TRAILER = range(4)  # the first two: inside a chunk
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class ChunkedScanner:
    """One chunked body's framing state; ``reset`` before each chunked message."""

    __slots__ = ("limits", "error", "_state", "_line", "_left", "_body_total",
                 "_trailer_bytes", "_trailer_count")

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        #: set when the framing breaks a rule or a limit: the request is answered with it
        self.error: Reject | None = None
        self._state = _SIZE
        self._line = bytearray()
        self._left = 0
        self._body_total = 0
        self._trailer_bytes = 0
        self._trailer_count = 0

    def reset(self) -> None:
        self._state = _SIZE
        self._line.clear()
        self._body_total = self._trailer_bytes = self._trailer_count = 0

    def _fail(self, status: int, reason: str) -> None:
        self.error = Reject(status, reason)

    def scan(self, data: bytes, pos: int, n: int) -> tuple[int, bool]:
        """How far the chunked body extends in ``data[pos:n]``: (stop, message_done). On a
        broken rule, ``error`` is set and the scan stops there."""
        limits = self.limits
        p = pos
        while p < n:
            state = self._state
            if state <= _DATA_END:  # chunk data, then its CRLF
                take = min(self._left, n - p)
                p += take
                self._left -= take
                if not self._left:
                    if state == _DATA:
                        self._state = _DATA_END
                        self._left = 2
                    else:
                        self._state = _SIZE
            else:
                nl = data.find(b"\n", p, n)
                line = self._line
                if nl < 0:
                    line += data[p:n]
                    p = n
                    if state == _SIZE and len(line) > limits.max_chunk_line:
                        self._fail(400, f"chunk size line longer than "
                                   f"{limits.max_chunk_line} bytes")
                    elif state == _TRAILER and self._trailer_bytes + len(line) > \
                            limits.max_header_bytes:
                        self._fail(431, f"trailer fields larger than "
                                   f"{limits.max_header_bytes} bytes")
                    break
                line += data[p:nl + 1]
                p = nl + 1
                text = bytes(line)
                line.clear()
                if state == _SIZE:
                    if len(text) > limits.max_chunk_line:
                        self._fail(400, f"chunk size line longer than "
                                   f"{limits.max_chunk_line} bytes")
                        break
                    size_text = text.split(b";", 1)[0].rstrip(b"\r\n").rstrip(b" \t")
                    if not _CHUNK_SIZE.fullmatch(size_text):
                        self._fail(400, f"malformed chunk size {size_text[:32]!r}")
                        break
                    size = int(size_text, 16)
                    self._body_total += size
                    maximum = limits.max_body_bytes
                    if maximum is not None and self._body_total > maximum:
                        self._fail(413, f"request body larger than {maximum} bytes")
                        break
                    if size:
                        self._state = _DATA
                        self._left = size
                    else:
                        self._state = _TRAILER
                else:  # a trailer line, or the empty line that ends the message
                    if text in (b"\r\n", b"\n"):
                        self._state = _SIZE
                        return p, True
                    self._trailer_bytes += len(text)
                    self._trailer_count += 1
                    if self._trailer_bytes > limits.max_header_bytes or \
                            self._trailer_count > limits.max_header_count:
                        self._fail(431, "trailer fields over the header limits")
                        break
        return p, False


__all__ = ["ChunkedScanner"]
