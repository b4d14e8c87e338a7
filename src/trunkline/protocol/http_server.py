"""Sans-I/O HTTP/1.1 server core on httptools (llhttp): bytes in, events out, bytes to send.

Rules:
- ``receive_data(bytes)`` returns a list of events, in wire order:
  ``RequestHead``; ``bytes`` (a piece of request body: the bytes object *is* the event);
  ``END_OF_MESSAGE``; ``Reject(status, reason)`` (the message is bad: answer ``status`` and
  close; nothing after it is parsed); ``Upgraded(data)`` (bytes after the head of an Upgrade
  or CONNECT request, which belong to another protocol from then on).
- Framing is never guessed (RFC 9112 section 6): llhttp already refuses Content-Length with
  Transfer-Encoding, duplicate, listed or signed Content-Length, obs-fold, whitespace before
  the colon, bare LF, CTLs and malformed chunk sizes. This module adds what llhttp allows:
  a Transfer-Encoding other than exactly ``chunked`` (``gzip, chunked`` passes llhttp), any
  Transfer-Encoding in HTTP/1.0, HTTP versions other than 1.0 and 1.1, a request line that is
  not ``method SP target SP version``, missing or repeated Host in HTTP/1.1.
- Limits hold for any split of the input. httptools never sees a partial head: we find the
  end of the head ourselves (bytes, not callbacks, so padding cannot hide from the count),
  check the request line, header block and field count, and only then feed it. Bodies are
  fed in spans whose end we know (Content-Length, or our own scan of the chunk framing), so
  the next pipelined head is always ours to check first.
- Response side: ``start_response`` then ``send_body`` return the bytes to write, with
  ``Date`` (cached per second) and ``Server``; Content-Length when the whole body comes in
  one piece, chunked when it streams (HTTP/1.1), close-delimited for HTTP/1.0; no body for
  HEAD, 1xx, 204 and 304. ``keep_alive`` says whether the connection may carry another
  request after this response.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Final
from urllib.parse import unquote

import httptools


@dataclass(frozen=True)
class HttpLimits:
    """What one request may be. ``None`` means no limit (only for the body)."""

    max_request_line: int = 8 * 1024  # bytes before the first CRLF (414)
    max_header_bytes: int = 16 * 1024  # field lines after the request line (431)
    max_header_count: int = 100  # field lines (431)
    max_body_bytes: int | None = 1024 * 1024  # decoded body (413)
    max_chunk_line: int = 4 * 1024  # chunk size plus extensions (400)


# --------------------------------------------------------------------------- events


class RequestHead:
    """A parsed request head. Header names are lowercased, values as sent."""

    # What most requests share lives on the class; __init__ stores only the rest.
    expect_continue = False
    upgrade: bytes | None = None  # lowercased Upgrade token (b"websocket"), b"connect", or None
    content_length: int | None = None
    chunked = False
    trace_id: str | None = None  # the x-trunkline-trace-id header, for client/server traces

    def __init__(self, method: str, target: bytes, path: str, raw_path: bytes, query: bytes,
                 http_version: str, headers: list[tuple[bytes, bytes]],
                 keep_alive: bool) -> None:
        self.method = method
        self.target = target
        self.path = path
        self.raw_path = raw_path
        self.query = query
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<RequestHead {self.method} {self.target!r} HTTP/{self.http_version}>"


class EndOfMessage:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_MESSAGE"


END_OF_MESSAGE: Final = EndOfMessage()


@dataclass(frozen=True, slots=True)
class Reject:
    """The request is malformed or over a limit: answer ``status`` and close."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Upgraded:
    """Bytes that follow an Upgrade/CONNECT request's head: no longer HTTP/1.1."""

    data: bytes


Event = RequestHead | bytes | EndOfMessage | Reject | Upgraded

# --------------------------------------------------------------------------- helpers

_HEAD, _BODY_LENGTH, _BODY_CHUNKED, _SWITCHED, _DONE, _ERROR = range(6)
_CK_SIZE, _CK_DATA, _CK_DATA_END, _CK_TRAILER = range(4)

_WATCHED = frozenset({b"content-length", b"transfer-encoding", b"host", b"expect",
                      b"upgrade", b"x-trunkline-trace-id"})
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                                    "OPTIONS", "CONNECT", "TRACE")}
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
# Host = uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2): an IP-literal in brackets
# (IPv6, checked further by ipaddress; or IPvFuture), or a reg-name (unreserved,
# pct-encoded, sub-delims; IPv4 addresses are reg-names by this syntax), possibly empty.
_HOST = re.compile(rb"(?:\[([0-9A-Fa-f:.]+)\]|\[[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+\]"
                   rb"|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?")
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
_date_second = 0
_date_line = b""


def date_line() -> bytes:
    """``date: ...\\r\\n`` for the current second (formatted once per second)."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        _date_line = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date_line


_valid_names: set[bytes] = set()
_valid_values: set[bytes] = set()
_CACHE_MAX = 4096  # validated response header names/values remembered (apps repeat them)


def valid_host(value: bytes) -> bool:
    """Whether ``value`` (a Host field value) is ``uri-host [":" port]``."""
    match = _HOST.fullmatch(value.rstrip(b" \t"))
    if match is None:
        return False
    literal = match.group(1)
    if literal is not None:
        try:
            ipaddress.IPv6Address(literal.decode("ascii"))
        except ValueError:
            return False
    return True


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


# --------------------------------------------------------------------------- the core


class HttpServerProtocol:
    """One connection's HTTP/1.1 state, server side. Not thread-safe; no I/O."""

    def __init__(self, limits: HttpLimits = HttpLimits(),
                 server_header: bytes | None = b"trunkline", max_heads: int = 32) -> None:
        self.limits = limits
        #: most request heads one ``receive_data`` call parses; bytes after that many wait
        #: (``held``) for ``receive_data(b"")``: one read of pipelined requests (256 KiB of
        #: GETs is ~10,000 of them) never becomes more parsed requests than this at once
        self._max_heads = max(1, max_heads)
        self._held = b""
        self._max_line = limits.max_request_line
        self._max_fields_bytes = limits.max_header_bytes
        self._max_fields = limits.max_header_count
        self._version = ""
        self._line_len = 0
        self._keep_alive = True
        self._parser = httptools.HttpRequestParser(self)
        self._state = _HEAD
        self._events: list[Event] = []
        self._partial = bytearray()  # a head that has not ended yet
        self._partial_scan = 0  # where to resume looking for CRLFCRLF in _partial
        # the message being parsed
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._watched: list[tuple[bytes, bytes]] = []
        self._last_host: bytes | None = None  # the last valid Host value on this connection
        self._in_body = False
        self._body_left = 0
        self._body_total = 0
        # chunked framing scan
        self._ck = _CK_SIZE
        self._ck_line = bytearray()
        self._ck_left = 0
        self._trailer_bytes = 0
        self._trailer_count = 0
        # response
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

    # ---------------------------------------------------------------- input

    @property
    def switched(self) -> bool:
        return self._state == _SWITCHED

    @property
    def held(self) -> int:
        """Bytes of pipelined requests not parsed yet (past ``max_heads`` in one call):
        ``receive_data(b"")`` goes on with them."""
        return len(self._held)

    @property
    def has_partial_head(self) -> bool:
        """Some bytes of a next request head have arrived (header timeout should run)."""
        return bool(self._partial)

    def receive_data(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        self._events = events
        if self._held:
            data, self._held = self._held + data, b""
        state = self._state
        if state >= _SWITCHED:
            if state == _SWITCHED and data:
                events.append(Upgraded(bytes(data)))
            return events
        if self._partial:
            if state != _HEAD:  # pragma: no cover - the partial buffer is only for heads
                raise AssertionError("partial head outside the head state")
            data = self._continue_head(data)
            if not data:
                return events
        n = len(data)
        if state == _HEAD:
            # The common case, one whole request head and nothing else, in one call.
            pos = self._take_head(data, 0, n)
            if pos == n or self._state >= _SWITCHED:
                if pos < n and self._state == _SWITCHED:
                    events.append(Upgraded(data[pos:]))
                return events
        else:
            pos = 0
        heads = 1
        while pos < n:
            state = self._state
            if state == _HEAD:
                if heads >= self._max_heads:
                    self._held = data[pos:]
                    break
                heads += 1
                pos = self._take_head(data, pos, n)
            elif state == _BODY_LENGTH:
                pos = self._take_length(data, pos, n)
            elif state == _BODY_CHUNKED:
                pos = self._take_chunked(data, pos, n)
            elif state == _SWITCHED:
                if pos < n:
                    events.append(Upgraded(data[pos:]))
                break
            else:
                break
        return events

    def _reject(self, status: int, reason: str) -> None:
        self._state = _ERROR
        self._partial = bytearray()
        self._held = b""
        self._events.append(Reject(status, reason))

    def _continue_head(self, data: bytes) -> bytes:
        """Append to a partial head; return the buffered bytes once the head is complete
        (followed by whatever came after it), else b"" (still waiting, or rejected)."""
        partial = self._partial
        partial += data
        start = self._partial_scan
        end = partial.find(b"\r\n\r\n", start)
        if end < 0:
            self._partial_scan = max(0, len(partial) - 3)
            self._check_partial(partial)
            return b""
        whole = bytes(partial)
        self._partial = bytearray()
        self._partial_scan = 0
        return whole

    def _check_partial(self, head: bytes | bytearray) -> None:
        """Limits on a head that has not ended yet."""
        limits = self.limits
        if head.count(b"\n") != head.count(b"\r\n"):
            self._reject(400, "bare LF in the request head; lines must end with CRLF")
            return
        line_end = head.find(b"\r\n")
        if line_end < 0:
            if len(head) > limits.max_request_line:
                self._reject(414, f"request line longer than {limits.max_request_line} bytes")
            return
        if line_end > limits.max_request_line:
            self._reject(414, f"request line longer than {limits.max_request_line} bytes")
        elif len(head) - line_end - 2 > limits.max_header_bytes:
            self._reject(431, f"header block larger than {limits.max_header_bytes} bytes")
        elif head.count(b"\r\n", line_end + 2) > limits.max_header_count:
            self._reject(431, f"more than {limits.max_header_count} header fields")

    def _take_head(self, data: bytes, pos: int, n: int) -> int:
        if data.startswith(b"\r\n", pos):  # RFC 9112 2.2: ignore empty lines before a request
            while data.startswith(b"\r\n", pos):
                pos += 2
            if pos >= n:
                return n
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            rest = data[pos:]
            self._partial = bytearray(rest)
            self._partial_scan = max(0, len(rest) - 3)
            self._check_partial(rest)
            return n
        head_end = end + 4
        line_end = data.find(b"\r\n", pos)
        if line_end - pos > self._max_line or end - line_end > self._max_fields_bytes:
            self._check_partial(data[pos:end + 2])  # says which limit, and rejects
            return n
        # The field count and the single spaces of the request line are checked after
        # parsing (len(headers); method + target + version lengths), cheaper than counting.
        self._line_len = line_end - pos
        # The version, from the bytes (httptools' get_http_version formats a new string).
        if line_end - pos < 14:  # shorter than "M / HTTP/1.1" plus a space: no version
            self._version = ""
        elif data.startswith(b"HTTP/1.1", line_end - 8):
            self._version = "1.1"
        elif data.startswith(b"HTTP/1.0", line_end - 8):
            self._version = "1.0"
        else:
            self._version = ""
        try:
            self._parser.feed_data(data if pos == 0 and head_end == n else data[pos:head_end])
        except httptools.HttpParserUpgrade:
            self._switch()
        except httptools.HttpParserCallbackError:
            raise
        except httptools.HttpParserError as exc:
            if self._state != _ERROR:
                # A head over a limit is answered as such, whatever else is wrong in it, as
                # when it arrives in pieces (_check_partial runs first then): the status
                # must not depend on how the bytes were split.
                self._check_partial(data[pos:end + 2])
            if self._state != _ERROR:
                self._reject(400, f"malformed request: {exc}")
        return head_end

    def _take_length(self, data: bytes, pos: int, n: int) -> int:
        take = min(self._body_left, n - pos)
        self._body_left -= take
        stop = pos + take
        self._feed(data if pos == 0 and stop == n else data[pos:stop])
        return stop

    def _take_chunked(self, data: bytes, pos: int, n: int) -> int:
        stop, done = self._scan_chunked(data, pos, n)
        if self._state == _ERROR:
            return n
        if stop > pos:
            self._feed(data[pos:stop])
        if self._state == _ERROR:
            return n
        if done != (self._state != _BODY_CHUNKED):
            self._reject(400, "chunked body framing is ambiguous")
            return n
        return stop

    def _scan_chunked(self, data: bytes, pos: int, n: int) -> tuple[int, bool]:
        """Find how far the chunked body extends in ``data[pos:n]`` (llhttp validates the
        bytes themselves when they are fed). Returns (stop, message_done)."""
        limits = self.limits
        p = pos
        while p < n:
            ck = self._ck
            if ck == _CK_DATA:
                take = min(self._ck_left, n - p)
                p += take
                self._ck_left -= take
                if not self._ck_left:
                    self._ck = _CK_DATA_END
                    self._ck_left = 2
            elif ck == _CK_DATA_END:
                take = min(self._ck_left, n - p)
                p += take
                self._ck_left -= take
                if not self._ck_left:
                    self._ck = _CK_SIZE
            else:
                nl = data.find(b"\n", p, n)
                line = self._ck_line
                if nl < 0:
                    line += data[p:n]
                    p = n
                    if ck == _CK_SIZE and len(line) > limits.max_chunk_line:
                        self._reject(400, f"chunk size line longer than "
                                     f"{limits.max_chunk_line} bytes")
                    elif ck == _CK_TRAILER and self._trailer_bytes + len(line) > \
                            limits.max_header_bytes:
                        self._reject(431, f"trailer fields larger than "
                                     f"{limits.max_header_bytes} bytes")
                    break
                line += data[p:nl + 1]
                p = nl + 1
                text = bytes(line)
                line.clear()
                if ck == _CK_SIZE:
                    if len(text) > limits.max_chunk_line:
                        self._reject(400, f"chunk size line longer than "
                                     f"{limits.max_chunk_line} bytes")
                        break
                    size_text = text.split(b";", 1)[0].rstrip(b"\r\n").rstrip(b" \t")
                    if not _CHUNK_SIZE.fullmatch(size_text):
                        self._reject(400, f"malformed chunk size {size_text[:32]!r}")
                        break
                    size = int(size_text, 16)
                    self._body_total += size
                    maximum = limits.max_body_bytes
                    if maximum is not None and self._body_total > maximum:
                        self._reject(413, f"request body larger than {maximum} bytes")
                        break
                    if size:
                        self._ck = _CK_DATA
                        self._ck_left = size
                    else:
                        self._ck = _CK_TRAILER
                else:  # a trailer line, or the empty line that ends the message
                    if text in (b"\r\n", b"\n"):
                        self._ck = _CK_SIZE
                        return p, True
                    self._trailer_bytes += len(text)
                    self._trailer_count += 1
                    if self._trailer_bytes > limits.max_header_bytes or \
                            self._trailer_count > limits.max_header_count:
                        self._reject(431, "trailer fields over the header limits")
                        break
        return p, False

    def _feed(self, chunk: bytes) -> None:
        try:
            self._parser.feed_data(chunk)
        except httptools.HttpParserUpgrade:
            self._switch()
        except httptools.HttpParserCallbackError:
            raise
        except httptools.HttpParserError as exc:
            if self._state != _ERROR:
                self._reject(400, f"malformed request: {exc}")

    def _switch(self) -> None:
        # receive_data's loop hands what follows the upgrade request on as ``Upgraded``.
        if self._state != _ERROR:
            self._state = _SWITCHED

    # ---------------------------------------------------------------- httptools callbacks

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_body:
            return  # a trailer field: counted by the chunk scan, not passed on
        name = name.lower()
        self._headers.append((name, value))
        if name in _WATCHED:
            self._watched.append((name, value))

    def on_headers_complete(self) -> None:
        # Per-message state is reset here, after use, so no on_message_begin callback is
        # needed (one Python call less per request).
        self._in_body = True
        headers = self._headers
        self._headers = []
        target = self._url
        self._url = b""
        parser = self._parser
        version = self._version
        if not version:
            version = parser.get_http_version()
            if version == "0.9":  # "GET /" with no version at all
                self._reject(400, "request line must be 'METHOD SP target SP HTTP/1.1'")
            else:
                self._reject(505, f"HTTP/{version} is not supported; use HTTP/1.1")
            return
        if len(headers) > self._max_fields:
            self._reject(431, f"more than {self._max_fields} header fields")
            return
        raw_method = parser.get_method()
        if self._line_len != len(raw_method) + len(target) + 10:
            self._reject(400, "request line must be 'METHOD SP target SP HTTP/1.1'")
            return
        watched = self._watched
        if len(watched) == 1 and watched[0][0] == b"host" and target.startswith(b"/"):
            # The usual request: a Host, no body, an origin-form target. Nothing to weigh
            # but the Host's syntax (checked once per value seen last on this connection).
            host = watched[0][1]
            watched.clear()
            if host != self._last_host:
                if not valid_host(host):
                    self._bad_host(host)
                    return
                self._last_host = host
            method = _METHODS.get(raw_method) or raw_method.decode("ascii")
            raw_path, _, query = target.partition(b"?")
            try:
                path = raw_path.decode("ascii")
            except UnicodeDecodeError:
                self._reject(400, "request target is not ASCII; percent-encode it")
                return
            if "%" in path:
                path = unquote(path)
            keep_alive = self._keep_alive = parser.should_keep_alive()
            head = RequestHead(method, target, path, raw_path, query, version, headers,
                               keep_alive)
            if method == "CONNECT":  # llhttp treats CONNECT as an upgrade
                head.upgrade = b"connect"
            self._events.append(head)
            return
        length: int | None = None
        chunked = expect = False
        upgrade_token = trace_id = None
        hosts = 0
        host = b""
        self._watched = []
        if watched:
            for name, value in watched:
                if name == b"host":
                    hosts += 1
                    host = value
                elif name == b"content-length":
                    if value.strip().isdigit():  # llhttp refuses anything else
                        length = int(value)
                elif name == b"transfer-encoding":
                    if version == "1.0":
                        self._reject(400, "Transfer-Encoding is not allowed in HTTP/1.0")
                        return
                    if chunked or value.strip().lower() != b"chunked":
                        self._reject(400, "Transfer-Encoding must be exactly 'chunked'")
                        return
                    chunked = True
                elif name == b"expect":
                    expect = value.lower() == b"100-continue"
                elif name == b"upgrade":
                    upgrade_token = value.strip().lower()
                else:
                    trace_id = value.decode("latin-1")
        if hosts != 1 and (hosts or version == "1.1"):
            self._reject(400, "an HTTP/1.1 request needs exactly one Host header")
            return
        if hosts and host != self._last_host:
            if not valid_host(host):
                self._bad_host(host)
                return
            self._last_host = host
        if length is not None:
            maximum = self.limits.max_body_bytes
            if maximum is not None and length > maximum:
                self._reject(413, f"request body of {length} bytes is larger than {maximum}")
                return
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        if target.startswith(b"/"):
            raw_path, _, query = target.partition(b"?")
        elif target == b"*" or method == "CONNECT":
            raw_path, query = target, b""
        else:  # absolute-form
            try:
                parsed = httptools.parse_url(target)
            except httptools.HttpParserInvalidURLError:
                self._reject(400, "malformed request target")
                return
            raw_path, query = parsed.path or b"/", parsed.query or b""
        try:
            path = raw_path.decode("ascii")
        except UnicodeDecodeError:
            self._reject(400, "request target is not ASCII; percent-encode it")
            return
        if "%" in path:
            path = unquote(path)
        upgrade = None
        if parser.should_upgrade():
            upgrade = b"connect" if method == "CONNECT" else (upgrade_token or b"")
        if chunked:
            self._state = _BODY_CHUNKED
            self._ck = _CK_SIZE
            self._ck_line.clear()
            self._body_total = self._trailer_bytes = self._trailer_count = 0
        elif length:
            self._state = _BODY_LENGTH
            self._body_left = length
        keep_alive = self._keep_alive = parser.should_keep_alive()
        head = RequestHead(method, target, path, raw_path, query, version, headers, keep_alive)
        if watched:
            if expect:
                head.expect_continue = True
            if length is not None:
                head.content_length = length
            if chunked:
                head.chunked = True
            if trace_id is not None:
                head.trace_id = trace_id
        if upgrade is not None:
            head.upgrade = upgrade
        self._events.append(head)

    def _bad_host(self, host: bytes) -> None:
        shown = host.decode("latin-1")
        shown = repr(shown if len(shown) <= 64 else shown[:64] + "...")
        self._reject(400, f"invalid Host header {shown}: it must be host[:port] "
                     "(RFC 9112 3.2, RFC 3986 3.2.2), e.g. 'example.com:8080'")

    def on_body(self, body: bytes) -> None:
        if self._state != _ERROR:
            self._events.append(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._state != _ERROR:
            # After a request that ends the connection, later bytes are ignored, not parsed.
            self._state = _HEAD if self._keep_alive else _DONE
            self._events.append(END_OF_MESSAGE)

    # ---------------------------------------------------------------- output

    def start_response(self, request: RequestHead, status: int,
                       headers: list[tuple[bytes, bytes]] | tuple[()] = ()) -> None:
        """Begin a response; its head goes out with the first ``send_body``. Raises
        ``ValueError`` for a response that cannot be framed (bad header, bad status)."""
        line = _STATUS_LINES.get(status)
        if line is None:
            if not isinstance(status, int) or not 200 <= status <= 999:
                raise ValueError(f"response status must be 200..999, got {status!r}")
            line = status_line(status)
        elif status < 200:
            raise ValueError(f"response status must be 200..999, got {status!r}")
        parts = [line]
        length: int | None = None
        chunked = False
        close = self._must_close or not request.keep_alive
        own_date = own_server = False
        for name, value in headers:
            lname = name.lower()
            if lname in _RESPONSE_SPECIAL:
                if lname == b"content-length":
                    if not value.isdigit() or (length is not None and int(value) != length):
                        raise ValueError(f"bad response content-length {value!r}")
                    length = int(value)
                elif lname == b"transfer-encoding":
                    if value.strip().lower() != b"chunked":
                        raise ValueError("response transfer-encoding must be 'chunked' "
                                         "(the server applies no other coding)")
                    if request.http_version == "1.0":
                        continue  # an HTTP/1.0 client cannot read chunks: close-delimit
                    chunked = True
                elif lname == b"connection":
                    if b"close" in value.lower():
                        close = True
                elif lname == b"date":
                    own_date = True
                else:
                    own_server = True
            if lname not in _valid_names or value not in _valid_values:
                _check_field(lname, value)
            parts += (name, b": ", value, b"\r\n")
        if chunked and length is not None:
            raise ValueError("response has both content-length and transfer-encoding")
        if not own_date:
            parts.append(date_line())
        if not own_server and self._server_line:
            parts.append(self._server_line)
        self._resp_head = parts
        self._resp_request = request
        self._resp_status = status
        self._resp_length = length
        self._resp_chunked = chunked
        self._resp_sent = 0
        self._resp_no_body = request.method == "HEAD" or status in _NO_BODY_STATUS
        self._resp_close = close

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
                head.append(b"connection: close\r\n")
            elif request.http_version == "1.0":
                head.append(b"connection: keep-alive\r\n")
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
            self._resp_sent += len(data)
            if self._resp_length is not None and self._resp_sent > self._resp_length:
                raise ValueError(f"response body longer than its content-length "
                                 f"({self._resp_length})")
            if data:
                out.append(data)
        if not more:
            if not self._resp_no_body and self._resp_length is not None and \
                    self._resp_sent != self._resp_length:
                raise ValueError(f"response body shorter than its content-length "
                                 f"({self._resp_sent} of {self._resp_length})")
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


__all__ = ["CONTINUE", "END_OF_MESSAGE", "EndOfMessage", "Event", "HttpLimits",
           "HttpServerProtocol", "Reject", "RequestHead", "Upgraded", "date_line",
           "error_response", "status_line"]
