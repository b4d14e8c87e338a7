"""The response side of the HTTP/1.1 server core: response heads and body framing (sans-I/O).

Rules:
- ``start_response`` then ``send_body`` return the bytes to write, with ``Date`` (cached per
  second) and ``Server``; Content-Length when the whole body comes in one piece, chunked
  when it streams (HTTP/1.1), close-delimited for HTTP/1.0; no body for HEAD, 1xx, 204 and
  304. ``keep_alive`` says whether the connection may carry another request after this
  response.
- Header names and values an app gives are checked (token names; no CR, LF, NUL or other
  controls in values); the ones already seen are remembered, as apps repeat them.
- ``error_response`` is the complete, closing answer to a rejected request.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import Final

from .http_server_events import RequestHead

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_NO_BODY_STATUS = frozenset({204, 304})
_RESPONSE_SPECIAL = frozenset({b"content-length", b"transfer-encoding", b"connection", b"date",
                               b"server"})


def status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


_STATUS_LINES = {s.value: status_line(s.value) for s in HTTPStatus}
_date_line = b""
_date_from = _date_until = 0.0  # the second that _date_line is for: [from, until)
_time = time.time


def date_line() -> bytes:
    """``date: ...\\r\\n`` for the current second (formatted once per second)."""
    global _date_from, _date_until, _date_line
    now = _time()
    if not _date_from <= now < _date_until:
        second = int(now)
        _date_from, _date_until = float(second), float(second + 1)
        _date_line = b"date: " + formatdate(second, usegmt=True).encode() + b"\r\n"
    return _date_line


_valid_names: set[bytes] = set()
_valid_values: set[bytes] = set()
_CACHE_MAX = 4096  # validated response header names/values remembered (apps repeat them)


def _check_field(name: bytes, value: bytes) -> None:
    if name not in _valid_names:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid response header name {name!r}")
        if len(_valid_names) < _CACHE_MAX:
            _valid_names.add(name)
    if value not in _valid_values:
        if _BAD_VALUE.search(value):
            raise ValueError(f"invalid response header value for {name!r}: control "
                             "characters (CR, LF, NUL...) are not allowed")
        if len(_valid_values) < _CACHE_MAX:
            _valid_values.add(value)


def error_response(status: int, reason: str, server: bytes | None = b"trunkline") -> bytes:
    """A complete, closing plain-text response (for rejects, timeouts, overload)."""
    body = f"{status} {_phrase(status)}: {reason}\n".encode("utf-8", "replace")
    return b"".join([
        _STATUS_LINES.get(status) or status_line(status), date_line(),
        b"server: " + server + b"\r\n" if server else b"",
        b"content-type: text/plain; charset=utf-8\r\ncontent-length: ",
        str(len(body)).encode(), b"\r\nconnection: close\r\n\r\n", body])


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


_HEADS_MAX = 512  # header lists remembered (apps answer with the same few, over and over)


class _Fields:
    """What one response header list says, worked out once (``_fields``) and remembered by
    its content (``_HEADS``): apps send the same lists again and again, and a dict look-up
    in C is cheaper than the Python loop that lowercases, sorts and checks each field."""

    __slots__ = ("block", "block_10", "length", "chunked", "close", "own_date", "own_server")

    def __init__(self, block: bytes, block_10: bytes, length: int | None, chunked: bool,
                 close: bool, own_date: bool, own_server: bool) -> None:
        self.block = block  # the field lines, each ending in CRLF
        self.block_10 = block_10  # the same for HTTP/1.0: without transfer-encoding
        self.length = length  # content-length, if given
        self.chunked = chunked  # transfer-encoding: chunked was given
        self.close = close  # connection: close was given
        self.own_date = own_date
        self.own_server = own_server


Key = tuple[tuple[bytes, ...], ...]  # an app's header list as a tuple of tuples
_HEADS: dict[Key, _Fields] = {}


def _fields(headers: Key) -> _Fields:
    """Check and sort an app's response fields; ``ValueError`` for one that cannot be sent."""
    parts: list[bytes] = []
    parts_10: list[bytes] = []
    length: int | None = None
    chunked = close = own_date = own_server = False
    for name, value in headers:
        lname = name.lower()
        line = b"".join((name, b": ", value, b"\r\n"))
        if lname in _RESPONSE_SPECIAL:
            if lname == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise ValueError(f"bad response content-length {value!r}")
                length = int(value)
            elif lname == b"transfer-encoding":
                if value.strip().lower() != b"chunked":
                    raise ValueError("response transfer-encoding must be 'chunked' "
                                     "(the server applies no other coding)")
                chunked = True
                parts.append(line)  # an HTTP/1.0 client cannot read chunks: close-delimit
                continue
            elif lname == b"connection":
                if b"close" in value.lower():
                    close = True
            elif lname == b"date":
                own_date = True
            else:
                own_server = True
        if lname not in _valid_names or value not in _valid_values:
            _check_field(lname, value)
        parts.append(line)
        parts_10.append(line)
    block = b"".join(parts)
    return _Fields(block, b"".join(parts_10) if chunked else block, length, chunked, close,
                   own_date, own_server)


def _remember(items: tuple[object, ...], headers: object) -> _Fields:
    """The fields of a header list not in ``_HEADS`` by itself: keyed by a tuple of tuples
    (a list of lists, or of other pairs, finds the same entry), worked out when new."""
    try:
        key: Key = tuple(map(tuple, items))  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"response headers must be (name, value) pairs, got "
                         f"{headers!r}") from None
    fields = _HEADS.get(key)
    if fields is None:
        fields = _fields(key)
        if len(_HEADS) >= _HEADS_MAX:
            _HEADS.clear()
        _HEADS[key] = fields
    return fields


class ResponseWriter:
    """One connection's response framing. ``HttpServerProtocol`` is one (it inherits this
    side, so the I/O layer calls ``start_response``/``send_body`` on the core directly)."""

    __slots__ = ("_server_line", "_resp_head", "_resp_request", "_resp_status", "_resp_length",
                 "_resp_chunked", "_resp_sent", "_resp_no_body", "_resp_close", "_must_close",
                 "keep_alive")

    def __init__(self, server_header: bytes | None = b"trunkline") -> None:
        self._server_line = b"server: " + server_header + b"\r\n" if server_header else b""
        self._resp_head: list[bytes] | None = None
        self._resp_request: RequestHead | None = None
        self._resp_status = 0
        self._resp_length: int | None = None
        self._resp_chunked = False
        self._resp_sent = 0
        self._resp_no_body = False
        self._resp_close = False
        self._must_close = False
        self.keep_alive = True  # may the connection carry another request?

    def start_response(self, request: RequestHead, status: int,
                       headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        """Begin a response; its head goes out with the first ``send_body``. Raises
        ``ValueError`` for a response that cannot be framed (bad header, bad status)."""
        line = _STATUS_LINES.get(status)
        if line is None:
            if not isinstance(status, int) or not 200 <= status <= 999:
                raise ValueError(f"response status must be 200..999, got {status!r}")
            line = status_line(status)
        elif status < 200:
            raise ValueError(f"response status must be 200..999, got {status!r}")
        try:
            items = tuple(headers)
        except TypeError:
            raise ValueError(f"response headers must be (name, value) pairs, got "
                             f"{headers!r}") from None
        try:
            # A list of tuples is its own key (tuple(t) is t): no copy of each field
            fields = _HEADS.get(items)
        except TypeError:  # a list of lists (unhashable): its key is made by _remember
            fields = None
        if fields is None:
            fields = _remember(items, headers)
        length = fields.length
        if request.http_version == "1.0":
            chunked = False
            block = fields.block_10
        else:
            chunked = fields.chunked
            if chunked and length is not None:
                raise ValueError("response has both content-length and transfer-encoding")
            block = fields.block
        parts = [line, block]
        if not fields.own_date:  # (date_line() inlined while the second lasts: ~1k less)
            parts.append(_date_line if _date_from <= _time() < _date_until else date_line())
        if not fields.own_server and self._server_line:
            parts.append(self._server_line)
        self._resp_head = parts
        self._resp_request = request
        self._resp_status = status
        self._resp_length = length
        self._resp_chunked = chunked
        self._resp_sent = 0
        self._resp_no_body = request.method == "HEAD" or status in _NO_BODY_STATUS
        self._resp_close = self._must_close or not request.keep_alive or fields.close

    def send_body(self, data: bytes, more: bool) -> bytes:
        """The bytes to write for this piece of the body (head first, the first time).
        Raises ``ValueError`` when the body disagrees with its Content-Length."""
        out: list[bytes]
        head = self._resp_head
        if head is not None:
            self._resp_head = None
            request = self._resp_request
            assert request is not None
            if self._resp_length is None and not self._resp_chunked and \
                    self._resp_status not in _NO_BODY_STATUS:
                if not more:
                    if data or request.method != "HEAD":
                        head += (b"content-length: ", str(len(data)).encode(), b"\r\n")
                        self._resp_length = len(data)
                elif request.http_version == "1.1":
                    if request.method != "HEAD":
                        head.append(b"transfer-encoding: chunked\r\n")
                        self._resp_chunked = True
                elif request.method != "HEAD":
                    self._resp_close = True  # HTTP/1.0: the end of the body is the close
            if self._resp_close:
                head.append(b"connection: close\r\n\r\n")
            elif request.http_version == "1.0":
                head.append(b"connection: keep-alive\r\n\r\n")
            else:
                head.append(b"\r\n")
            out = head
        else:
            out = []
        if self._resp_no_body:
            pass
        elif self._resp_chunked:
            if data:
                out += (b"%x\r\n" % len(data), data, b"\r\n")
            if not more:
                out.append(b"0\r\n\r\n")
        else:
            sent = self._resp_sent = self._resp_sent + len(data)
            length = self._resp_length
            if length is not None and sent > length:
                raise ValueError(f"response body longer than its content-length ({length})")
            if data:
                out.append(data)
            if not more and length is not None and sent != length:
                raise ValueError(f"response body shorter than its content-length "
                                 f"({sent} of {length})")
        if not more:
            request = self._resp_request
            # Only this response's request decides; a later pipelined one speaks for itself.
            self.keep_alive = not self._resp_close and (request is None or
                                                        request.upgrade is None)
            self._resp_request = None
        return b"".join(out) if len(out) != 1 else out[0]

    def close_after_response(self) -> None:
        """Ask for ``connection: close`` on the response whose head is not yet sent, and
        on any later one (graceful shutdown)."""
        self._must_close = True
        self._resp_close = True
        self.keep_alive = False


__all__ = ["CONTINUE", "ResponseWriter", "date_line", "error_response", "status_line"]
