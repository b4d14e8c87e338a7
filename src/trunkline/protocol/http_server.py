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
- The pieces live in their own modules: the events and limits (``http_server_events.py``),
  checks on a head besides llhttp's (``http_server_head.py``), the chunked framing scan
  (``http_server_chunked.py``) and the response side (``http_server_response.py``
  ``ResponseWriter``, which this core inherits: ``start_response``, ``send_body``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httptools

from .http_server_chunked import ChunkedScanner
from .http_server_events import (
    END_OF_MESSAGE,
    Event,
    HttpLimits,
    Reject,
    RequestHead,
    Upgraded,
)
from .http_server_head import bad_host_reason, head_limit_reject, split_target, valid_host
from .http_server_response import ResponseWriter

_HEAD, _BODY_LENGTH, _BODY_CHUNKED, _SWITCHED, _DONE, _ERROR = range(6)

_WATCHED = frozenset({b"content-length", b"transfer-encoding", b"host", b"expect",
                      b"upgrade", b"x-trunkline-trace-id"})
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                                    "OPTIONS", "CONNECT", "TRACE")}


class HttpServerProtocol(ResponseWriter):
    """One connection's HTTP/1.1 state, server side. Not thread-safe; no I/O."""

    # Slots: with its response side, over 30 attributes, and a CPython 3.11 instance dict
    # that large stops sharing its keys: every attribute read would take the dict-hint path
    # (a slot read stays specialized).
    __slots__ = ("limits", "_max_heads", "_held", "held", "has_partial_head", "_max_line",
                 "_max_fields_bytes", "_max_fields", "_version", "_line_len", "_keep_alive",
                 "_parser", "_state", "_events", "_partial", "_partial_scan", "_urls",
                 "_ends", "on_url", "on_message_complete", "_headers", "_watched",
                 "_last_host", "_body_left", "_chunks", "scope_template")

    def __init__(self, limits: HttpLimits = HttpLimits(),
                 server_header: bytes | None = b"trunkline", max_heads: int = 32) -> None:
        super().__init__(server_header)
        self.limits = limits
        #: most request heads one ``receive_data`` call parses; bytes after that many wait
        #: (``held``) for ``receive_data(b"")``: one read of pipelined requests (256 KiB of
        #: GETs is ~10,000 of them) never becomes more parsed requests than this at once
        self._max_heads = max(1, max_heads)
        self._held = b""
        #: bytes of pipelined requests not parsed yet (past ``max_heads`` in one call):
        #: ``receive_data(b"")`` goes on with them (a plain attribute: read per request)
        self.held = 0
        #: some bytes of a next request head have arrived (header timeout should run)
        self.has_partial_head = False
        self._max_line = limits.max_request_line
        self._max_fields_bytes = limits.max_header_bytes
        self._max_fields = limits.max_header_count
        self._version = ""
        self._line_len = 0
        self._keep_alive = True
        # Two of llhttp's callbacks are C methods, not Python ones: httptools calls a C
        # method for ~250 instructions, a Python method for ~1,000 (CPython 3.11). ``on_url``
        # appends the target's bytes to ``_urls`` (one piece, as a head is fed whole);
        # ``on_message_complete`` pops ``_ends``, which holds one item between messages, and
        # the code that fed the parser ends the message (``_message_ended``) when it finds
        # ``_ends`` empty. (A deque and a one-item list: neither frees or grows its storage
        # when emptied and filled again, as a cleared list would.)
        self._urls: deque[bytes] = deque()
        self._ends: list[None] = [None]
        self.on_url: Callable[[bytes], None] = self._urls.append
        self.on_message_complete: Callable[[], object] = self._ends.pop
        self._parser = httptools.HttpRequestParser(self)
        self._state = _HEAD
        self._events: list[Event] = []
        self._partial = bytearray()  # a head that has not ended yet
        self._partial_scan = 0  # where to resume looking for CRLFCRLF in _partial
        # the message being parsed
        self._headers: list[tuple[bytes, bytes]] = []
        self._watched: list[tuple[bytes, bytes]] = []
        self._last_host: bytes | None = None  # the last valid Host value on this connection
        self._body_left = 0
        self._chunks: ChunkedScanner | None = None  # made at the first chunked body
        #: an ASGI ``http`` scope with this connection's keys (the I/O layer's, or None):
        #: when set, each ``RequestHead`` comes with ``scope``, a copy of it with the
        #: request's keys filled in from the parse (no second copy of them from the head)
        self.scope_template: dict[str, Any] | None = None

    # ---------------------------------------------------------------- input

    @property
    def switched(self) -> bool:
        return self._state == _SWITCHED

    def receive_data(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        self._events = events
        if self.held:
            data, self._held = self._held + data, b""
            self.held = 0
        state = self._state
        if state >= _SWITCHED:
            if state == _SWITCHED and data:
                events.append(Upgraded(bytes(data)))
            return events
        if self.has_partial_head:
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
                    self.held = n - pos
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
        self.has_partial_head = False
        self._held = b""
        self.held = 0
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
        self.has_partial_head = False
        self._partial_scan = 0
        return whole

    def _check_partial(self, head: bytes | bytearray) -> None:
        """Limits on a head that has not ended yet."""
        reject = head_limit_reject(head, self.limits)
        if reject is not None:
            self._reject(reject.status, reject.reason)

    def _take_head(self, data: bytes, pos: int, n: int) -> int:
        # (bytes.find and startswith parse their arguments the slow way, ~1k instructions
        # a call: the common head takes two finds, and no startswith)
        line_end = data.find(b"\r\n", pos)
        if line_end == pos:  # RFC 9112 2.2: ignore empty lines before a request
            while data.startswith(b"\r\n", pos):
                pos += 2
            if pos >= n:
                return n
            line_end = data.find(b"\r\n", pos)
        # The head's end is the first CRLFCRLF, which cannot start before the first CRLF.
        end = data.find(b"\r\n\r\n", line_end) if line_end >= 0 else -1
        if end < 0:
            rest = data[pos:]
            self._partial = bytearray(rest)
            self.has_partial_head = True
            self._partial_scan = max(0, len(rest) - 3)
            self._check_partial(rest)
            return n
        head_end = end + 4
        if line_end - pos > self._max_line or end - line_end > self._max_fields_bytes:
            self._check_partial(data[pos:end + 2])  # says which limit, and rejects
            return n
        # The field count and the single spaces of the request line are checked after
        # parsing (len(headers); method + target + version lengths), cheaper than counting.
        self._line_len = line_end - pos
        # The version, from the bytes (httptools' get_http_version formats a new string);
        # a line shorter than "M / HTTP/1.1" plus a space has none.
        # (compared, not looked up: a new slice's hash and a dict probe cost more)
        version = data[line_end - 8:line_end] if line_end - pos >= 14 else b""
        self._version = "1.1" if version == b"HTTP/1.1" else \
            "1.0" if version == b"HTTP/1.0" else ""
        if not self._version:
            # No "HTTP/1.x" just before the first CRLF (a bare LF earlier, no version, another
            # version): judge the head as one in pieces is judged first, so a bare LF gets
            # the same 400 however the bytes were split, not the 505 httptools leads to.
            self._check_partial(data[pos:end + 2])
            if self._state == _ERROR:
                return n
        ends = self._ends
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
        else:
            if not ends:  # a head with no body: the message ended (inline _message_ended)
                ends.append(None)
                if self._state != _ERROR:
                    self._state = _HEAD if self._keep_alive else _DONE
                    self._events.append(END_OF_MESSAGE)
        return head_end

    def _take_length(self, data: bytes, pos: int, n: int) -> int:
        take = min(self._body_left, n - pos)
        self._body_left -= take
        stop = pos + take
        self._feed(data if pos == 0 and stop == n else data[pos:stop])
        return stop

    def _take_chunked(self, data: bytes, pos: int, n: int) -> int:
        chunks = self._chunks
        assert chunks is not None  # made when the chunked head was parsed
        stop, done = chunks.scan(data, pos, n)
        if chunks.error is not None:
            self._reject(chunks.error.status, chunks.error.reason)
            return n
        if stop > pos:
            self._feed(data[pos:stop])
            if self._state != _BODY_CHUNKED:
                # The message ended: drop its trailer fields, which on_header took as it
                # takes any (no check there per field: trailers come only here).
                self._headers.clear()
                self._watched.clear()
        if self._state == _ERROR:
            return n
        if done != (self._state != _BODY_CHUNKED):
            self._reject(400, "chunked body framing is ambiguous")
            return n
        return stop

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
        else:
            if not self._ends:
                self._message_ended()

    def _message_ended(self) -> None:
        """llhttp's on_message_complete came (it emptied ``_ends``): the message is over."""
        self._ends.append(None)
        if self._state != _ERROR:
            # After a request that ends the connection, later bytes are ignored, not parsed.
            self._state = _HEAD if self._keep_alive else _DONE
            self._events.append(END_OF_MESSAGE)

    def _switch(self) -> None:
        # receive_data's loop hands what follows the upgrade request on as ``Upgraded``;
        # llhttp ended the message before it stopped at the upgrade.
        if not self._ends:
            self._message_ended()
        if self._state != _ERROR:
            self._state = _SWITCHED

    # ---------------------------------------------------------------- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        # (a chunked body's trailer fields come here too: _take_chunked drops them)
        name = name.lower()
        self._headers.append((name, value))
        if name in _WATCHED:
            self._watched.append((name, value))

    def on_headers_complete(self) -> None:
        # Per-message state is reset here, after use, so no on_message_begin callback is
        # needed (one Python call less per request).
        headers = self._headers
        self._headers = []
        urls = self._urls
        if len(urls) == 1:
            target = urls.popleft()
        else:  # (not seen: llhttp gives a span in pieces only across feeds)
            target = b"".join(urls)
            urls.clear()
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
        # (GET compared first: the usual method, and cheaper than hashing new bytes)
        method = "GET" if raw_method == b"GET" else \
            _METHODS.get(raw_method) or raw_method.decode("ascii")
        watched = self._watched
        if len(watched) == 1 and watched[0][0] == b"host" and target[:1] == b"/":
            # The usual request: a Host, no body, an origin-form target. Nothing to weigh
            # but the Host's syntax (checked once per value seen last on this connection).
            host = watched[0][1]
            watched.clear()
            if host != self._last_host:
                if not valid_host(host):
                    self._reject(400, bad_host_reason(host))
                    return
                self._last_host = host
            raw_path, _, query = target.partition(b"?")
            framing = None
        else:
            self._watched = []
            framing = self._weigh(watched, target, method, version)
            if framing is None:
                return  # rejected
            raw_path, query = framing.raw_path, framing.query
        try:
            path = raw_path.decode("ascii")
        except UnicodeDecodeError:
            self._reject(400, "request target is not ASCII; percent-encode it")
            return
        if "%" in path:
            path = unquote(path)
        if framing is not None:
            framing.start_body(self)
        keep_alive = self._keep_alive = parser.should_keep_alive()
        # Attribute stores on a new RequestHead rather than RequestHead(...) with arguments:
        # the type call would run __init__ as a C-to-Python call (~1.4k instructions more
        # per request in CPython 3.11).
        head = RequestHead()
        head.method = method
        head.target = target
        head.path = path
        head.raw_path = raw_path
        head.query = query
        head.http_version = version
        head.headers = headers
        head.keep_alive = keep_alive
        # Stored though they are the class's defaults: the server reads both on every
        # request, and an attribute only on the class is a slow (unspecialized) read
        # through the instance in CPython 3.11.
        head.expect_continue = False
        head.upgrade = None
        if framing is not None:
            framing.describe(head)
        elif method == "CONNECT":  # llhttp treats CONNECT as an upgrade
            head.upgrade = b"connect"
        template = self.scope_template
        if template is not None:
            head.scope = scope = template.copy()
            scope["http_version"] = version
            scope["method"] = method
            scope["path"] = path
            scope["raw_path"] = raw_path
            scope["query_string"] = query
            scope["headers"] = headers
        self._events.append(head)

    def _weigh(self, watched: list[tuple[bytes, bytes]], target: bytes, method: str,
               version: str) -> _Framing | None:
        """The fields that frame the message, Host, Expect, Upgrade, and the target in any
        form: what they make of the request, or None when it is rejected."""
        framing = _Framing()
        hosts = 0
        host = b""
        for name, value in watched:
            if name == b"host":
                hosts += 1
                host = value
            elif name == b"content-length":
                if value.strip().isdigit():  # llhttp refuses anything else
                    framing.length = int(value)
            elif name == b"transfer-encoding":
                if version == "1.0":
                    self._reject(400, "Transfer-Encoding is not allowed in HTTP/1.0")
                    return None
                if framing.chunked or value.strip().lower() != b"chunked":
                    self._reject(400, "Transfer-Encoding must be exactly 'chunked'")
                    return None
                framing.chunked = True
            elif name == b"expect":
                framing.expect = value.lower() == b"100-continue"
            elif name == b"upgrade":
                framing.upgrade_token = value.strip().lower()
            else:
                framing.trace_id = value.decode("latin-1")
        if hosts != 1 and (hosts or version == "1.1"):
            self._reject(400, "an HTTP/1.1 request needs exactly one Host header")
            return None
        if hosts and host != self._last_host:
            if not valid_host(host):
                self._reject(400, bad_host_reason(host))
                return None
            self._last_host = host
        length = framing.length
        if length is not None:
            maximum = self.limits.max_body_bytes
            if maximum is not None and length > maximum:
                self._reject(413, f"request body of {length} bytes is larger than {maximum}")
                return None
        parts = split_target(target, method)
        if parts is None:
            self._reject(400, "malformed request target")
            return None
        framing.raw_path, framing.query = parts
        if self._parser.should_upgrade():
            framing.upgrade = b"connect" if method == "CONNECT" else (
                framing.upgrade_token or b"")
        return framing

    def on_body(self, body: bytes) -> None:
        if self._state != _ERROR:
            self._events.append(body)


class _Framing:
    """What ``_weigh`` made of a request with more than a Host to weigh."""

    length: int | None = None
    chunked = False
    expect = False
    upgrade_token: bytes | None = None
    upgrade: bytes | None = None
    trace_id: str | None = None
    raw_path = b""
    query = b""

    def start_body(self, core: HttpServerProtocol) -> None:
        """Set the core up for this request's body, if it has one."""
        if self.chunked:
            core._state = _BODY_CHUNKED
            if core._chunks is None:
                core._chunks = ChunkedScanner(core.limits)
            else:
                core._chunks.reset()
        elif self.length:
            core._state = _BODY_LENGTH
            core._body_left = self.length

    def describe(self, head: RequestHead) -> None:
        if self.expect:
            head.expect_continue = True
        if self.length is not None:
            head.content_length = self.length
        if self.chunked:
            head.chunked = True
        if self.trace_id is not None:
            head.trace_id = self.trace_id
        if self.upgrade is not None:
            head.upgrade = self.upgrade


__all__ = ["HttpServerProtocol"]
