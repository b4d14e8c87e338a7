"""HTTP/1.1 client core, sans-I/O: request bytes out, parsed response events in.

Rules (the h11 way):
- No I/O here: this module never imports asyncio or socket. The connection that owns a
  ``ResponseParser`` feeds it bytes and EOF; the parser calls the owner's three callbacks.
- One request at a time per connection (no pipelining), so any byte that arrives between
  responses is a protocol error, and a HEAD response can end at its blank line.
- Response framing follows RFC 9112 section 6.3: no body for HEAD, 1xx, 204 and 304;
  then chunked; then Content-Length; else the body runs until the server closes.
- Interim 1xx responses (except 101) are skipped; the final response is the one reported.
- Limits httptools lacks are enforced here: header block size and header count.
- Request heads are built from pre-encoded pieces with one ``join`` and no per-header
  formatting on the hot path; names and values are checked for CR, LF and NUL so a caller
  cannot smuggle a second request into a header.
- A request's headers follow ``ClientHeaders``: the request's own replace the client's of
  the same name, which replace the built-in ones.
- Request body framing is decided here (``request_body``, ``body_framing``; h11's
  ``_body_framing`` for the sending side): a Content-Length or Transfer-Encoding the caller
  set is kept; else whole bytes get Content-Length, a stream goes chunked, a method that
  usually carries a body gets ``Content-Length: 0``, the others nothing.
"""

from __future__ import annotations

import json as _json
import re
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol
from urllib.parse import urlencode

import httptools

from ..errors import InvalidHeaderError, ProtocolError

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 128

#: Methods whose repetition has the same effect as one call (RFC 9110 section 9.2.2); only
#: these are retried after a connection failed before any response byte.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
#: Methods whose requests carry no body unless given one: no ``Content-Length: 0`` for them.
BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"})

HeaderPairs = list[tuple[bytes, bytes]]
HeadersInput = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[str | bytes, str | bytes]]

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(rb"[\r\n\0]")
_TARGET_SAFE = re.compile(r"^[\x21-\x7e]*$")

CHUNK_END = b"0\r\n\r\n"
_FRAMING_NAMES = (b"content-length", b"transfer-encoding")
_KNOWN_METHODS = {m: m.encode() for m in
                  ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")}


# --------------------------------------------------------------------------- requests


def _as_bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("latin-1")


def encode_headers(headers: HeadersInput | None) -> tuple[bytes, frozenset[bytes]]:
    """Validate headers and encode them as one ``name: value\\r\\n`` block.

    Returns the block and the set of lower-cased names it contains, so the caller can tell
    which defaults (Host, Content-Length, ...) the user already set."""
    if not headers:
        return b"", frozenset()
    items = headers.items() if isinstance(headers, Mapping) else headers
    parts: list[bytes] = []
    names: set[bytes] = set()
    for name, value in items:
        n, v = _as_bytes(name), _as_bytes(value)
        if not _TOKEN.match(n):
            raise InvalidHeaderError(f"header name {n!r} is not an HTTP token; use letters, "
                                     "digits and -, e.g. 'X-Request-Id'")
        if _BAD_VALUE.search(v):
            raise InvalidHeaderError(f"header {n.decode()!r} has a CR, LF or NUL in its value; "
                                     "send one header per value instead")
        parts.append(b"%s: %s\r\n" % (n, v.strip(b" \t")))
        names.add(n.lower())
    return b"".join(parts), frozenset(names)


class ClientHeaders:
    """A client's headers for every request, encoded once, and the rule for one request's
    own: a header the request names replaces the client's header of that name (as the
    client's given headers replace its built-in ones), and a content type its body implies
    (``RequestBody.content_type``) goes in unless the request names one."""

    __slots__ = ("pairs", "block", "names")

    def __init__(self, builtin: HeadersInput, given: HeadersInput | None = None) -> None:
        given_pairs = list(_pairs(given))
        given_names = {_lower(n) for n, _ in given_pairs}
        self.pairs = [(n, v) for n, v in _pairs(builtin)
                      if _lower(n) not in given_names] + given_pairs
        self.block, self.names = encode_headers(self.pairs)

    def for_request(self, headers: HeadersInput | None,
                    content_type: bytes = b"") -> tuple[bytes, frozenset[bytes]]:
        """The request's header block (without Host and body framing) and its names."""
        if not headers and not content_type:
            return self.block, self.names
        own_block, own_names = encode_headers(headers)
        if b"content-type" in own_names:
            content_type = b""
        if own_names & self.names:
            block, names = encode_headers([(n, v) for n, v in self.pairs
                                           if _lower(n) not in own_names])
            return block + content_type + own_block, names | own_names
        return self.block + content_type + own_block, self.names | own_names


def _pairs(headers: HeadersInput | None) -> Iterable[tuple[str | bytes, str | bytes]]:
    if not headers:
        return ()
    return headers.items() if isinstance(headers, Mapping) else headers


def _lower(name: str | bytes) -> bytes:
    return _as_bytes(name).lower()


def encode_target(target: str) -> bytes:
    """The request target as wire bytes; characters that may not appear raw are
    percent-encoded (spaces, non-ASCII), everything already encoded is kept."""
    if _TARGET_SAFE.match(target):
        return target.encode("ascii")
    from urllib.parse import quote

    return quote(target, safe="/?#[]@!$&'()*+,;=:%~-._").encode("ascii")


def check_method(method: str) -> bytes:
    known = _KNOWN_METHODS.get(method)
    if known is not None:
        return known
    raw = method.upper().encode("ascii", "replace")
    if not _TOKEN.match(raw):
        raise InvalidHeaderError(f"method {method!r} is not an HTTP token, e.g. GET or POST")
    return raw


def encode_request_head(method: bytes, target: bytes, host_line: bytes, header_block: bytes,
                        framing: bytes) -> bytes:
    """``METHOD target HTTP/1.1`` + Host line + headers + body framing + blank line.

    ``host_line`` is a complete ``Host: ...\\r\\n`` line (or empty when the user gave one);
    ``framing`` is ``Content-Length: n\\r\\n``, ``Transfer-Encoding: chunked\\r\\n`` or empty."""
    return b"".join((method, b" ", target, b" HTTP/1.1\r\n", host_line, header_block, framing,
                     b"\r\n"))


def content_length_line(size: int) -> bytes:
    return b"Content-Length: %d\r\n" % size


CHUNKED_LINE = b"Transfer-Encoding: chunked\r\n"


def encode_chunk(data: bytes | bytearray | memoryview) -> bytes:
    """One chunk of a chunked body (empty input gives empty output: the end is CHUNK_END)."""
    if not data:
        return b""
    return b"%x\r\n%s\r\n" % (len(data), bytes(data))


# --------------------------------------------------------------------------- request bodies

#: A body: bytes or text, a binary file, or an (async) iterable of bytes (sent chunked unless a
#: Content-Length header is given).
Body = bytes | bytearray | memoryview | str | IO[bytes] | Iterable[bytes] | AsyncIterable[bytes]
BodyStream = Iterable[bytes] | AsyncIterable[bytes]
FILE_BLOCK = 256 * 1024


@dataclass(frozen=True, slots=True)
class RequestBody:
    """What follows the head: whole bytes (can be sent again) or a stream (sent once)."""

    data: bytes | None = None
    stream: BodyStream | None = None
    #: the ``Content-Type: ...\r\n`` line a json or form body implies, unless the caller set one
    content_type: bytes = b""

    @property
    def replayable(self) -> bool:
        return self.stream is None


NO_BODY = RequestBody()


def request_body(content: Body | None = None, data: Mapping[str, Any] | None = None,
                 json: Any = None, *, has_json: bool = False) -> RequestBody:
    """The body from one of ``json`` (when ``has_json``: None is the JSON ``null``), form
    ``data`` or raw ``content``, in that order of precedence. A binary file is read in
    blocks as it is sent, not by lines."""
    if has_json:
        encoded = _json.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()
        return RequestBody(encoded, content_type=b"Content-Type: application/json\r\n")
    if data is not None:
        return RequestBody(urlencode(data, doseq=True).encode(),
                           content_type=b"Content-Type: application/x-www-form-urlencoded\r\n")
    if content is None:
        return NO_BODY
    if isinstance(content, str):
        return RequestBody(content.encode())
    if isinstance(content, bytes | bytearray | memoryview):
        return RequestBody(bytes(content))
    if hasattr(content, "read"):
        return RequestBody(stream=_file_blocks(content))
    return RequestBody(stream=content)


def _file_blocks(file: Any, size: int = FILE_BLOCK) -> Iterator[bytes]:
    while block := file.read(size):
        yield block


@dataclass(frozen=True, slots=True)
class Framing:
    """How a request body is delimited on the wire (RFC 9112 section 6)."""

    line: bytes  # the head line to add: Content-Length, Transfer-Encoding, or b""
    chunked: bool = False  # a streamed body goes out as chunks (``encode_chunk``, CHUNK_END)


_NOTHING = Framing(b"")
_CALLER_CHUNKED = Framing(b"", chunked=True)
_EMPTY = Framing(b"Content-Length: 0\r\n")


def body_framing(method: str, names: frozenset[bytes], header_block: bytes,
                 body: RequestBody) -> Framing:
    """The framing for ``body``, given the headers the caller set (``names``, lower-cased,
    and their encoded ``header_block``). The caller's Content-Length or Transfer-Encoding
    wins, and then a stream is chunked only if that Transfer-Encoding says so."""
    if b"content-length" in names or b"transfer-encoding" in names:
        if body.stream is not None and b"transfer-encoding" in names and \
                header_has(header_block, b"transfer-encoding", b"chunked"):
            return _CALLER_CHUNKED
        return _NOTHING
    if body.data is not None:
        return Framing(content_length_line(len(body.data)))
    if body.stream is not None:
        return Framing(CHUNKED_LINE, chunked=True)
    if method not in BODYLESS_METHODS:
        return _EMPTY
    return _NOTHING


def asks_close(names: frozenset[bytes], header_block: bytes) -> bool:
    """Whether the caller's headers say ``Connection: close`` (no reuse after the response)."""
    return b"connection" in names and header_has(header_block, b"connection", b"close")


def header_has(block: bytes, name: bytes, token: bytes) -> bool:
    """Whether a header ``name`` (lower-case) in an encoded block mentions ``token``."""
    for line in block.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == name and token in value.lower():
            return True
    return False


# --------------------------------------------------------------------------- responses


class ResponseHandler(Protocol):
    """What a ``ResponseParser`` calls; implemented by the I/O connection."""

    def on_response_head(self, status: int, reason: bytes, version: str,
                         headers: HeaderPairs) -> None: ...

    def on_response_body(self, data: bytes) -> None: ...

    def on_response_complete(self, keep_alive: bool) -> None: ...


class _SkipBody(Exception):
    """Raised inside httptools' callback to end a HEAD response at its blank line."""


class ResponseParser:
    """Parses one response at a time with httptools and reports it to a ``ResponseHandler``.

    Call ``expect(head=...)`` before each request is sent, ``feed`` with every received chunk,
    and ``feed_eof`` when the peer closes. ``ProtocolError`` reports malformed input."""

    __slots__ = ("_handler", "_parser", "_headers", "_reason", "_head_bytes", "_in_message",
                 "_head_done", "_head_request", "_framed", "_status", "_max_head",
                 "_max_headers", "_skipped", "_version")

    def __init__(self, handler: ResponseHandler, *, max_head: int = MAX_HEAD_BYTES,
                 max_headers: int = MAX_HEADERS) -> None:
        self._handler = handler
        self._max_head = max_head
        self._max_headers = max_headers
        self._parser = httptools.HttpResponseParser(self)
        self._headers: HeaderPairs = []
        self._reason = b""
        self._head_bytes = 0
        self._in_message = False  # a response was expected and has not completed
        self._head_done = False
        self._head_request = False
        self._framed = False  # Content-Length or chunked present (else close-delimited)
        self._status = 0
        self._skipped = False
        self._version = "1.1"

    # ---- driving

    def expect(self, *, head: bool = False) -> None:
        """Get ready for the response to a request about to be sent."""
        self._in_message = True
        self._head_done = False
        self._head_request = head
        self._head_bytes = 0
        self._framed = False
        self._headers = []

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not self._in_message:
            raise ProtocolError(f"the server sent {len(data)} bytes while no request was "
                                "outstanding")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if self._skipped:  # a HEAD response ended at its blank line
                self._skipped = False
                self._parser = httptools.HttpResponseParser(self)
                self._finish(keep_alive=self._keep_alive_from_headers())
                return
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                raise cause from None
            raise ProtocolError(f"invalid HTTP response: {exc}") from exc
        except httptools.HttpParserUpgrade:
            # 101 Switching Protocols: the response is complete; the bytes after it belong to
            # the new protocol, which this client does not speak, so the connection ends here.
            self._finish(keep_alive=False)
            return
        except httptools.HttpParserError as exc:
            raise ProtocolError(f"invalid HTTP response: {exc}") from exc
        if self._in_message and not self._head_done:
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head:
                raise ProtocolError(f"response header block is over {self._max_head} bytes")

    def feed_eof(self) -> bool:
        """The peer closed. Returns True if that completed a close-delimited response;
        raises ``ProtocolError`` if it cut a response short; False when none was pending."""
        if not self._in_message:
            return False
        if self._head_done and not self._framed and not self._head_request:
            self._finish(keep_alive=False)
            return True
        if self._head_done:
            raise ProtocolError("the server closed the connection before the response body "
                                "was complete")
        raise ProtocolError("the server closed the connection before sending a full response "
                            "head")

    # ---- httptools callbacks

    def on_message_begin(self) -> None:
        if not self._in_message:
            raise ProtocolError("the server sent a second response to one request")
        self._reason = b""

    def on_status(self, status: bytes) -> None:
        self._reason += status  # called once per received piece of the status line

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        if len(headers) >= self._max_headers:
            raise ProtocolError(f"response has more than {self._max_headers} headers")
        headers.append((name, value))
        size = len(name)  # compare only names of the right length: this runs per header
        if (size == 14 or size == 17) and name.lower() in _FRAMING_NAMES:
            self._framed = True

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._headers = []  # interim response (100 Continue, 103 Early Hints): skip it
            return
        self._status = status
        self._head_done = True
        self._version = parser.get_http_version()
        if status in (204, 304) or status < 200:
            self._framed = True  # no body, complete without EOF
        self._handler.on_response_head(status, self._reason, self._version, self._headers)
        if self._head_request:
            self._skipped = True
            raise _SkipBody

    def on_body(self, body: bytes) -> None:
        self._handler.on_response_body(body)

    def on_message_complete(self) -> None:
        if not self._head_done:
            return  # the end of an interim 1xx response
        self._finish(keep_alive=self._parser.should_keep_alive())

    # ---- internals

    def _finish(self, *, keep_alive: bool) -> None:
        self._in_message = False
        self._head_done = False
        self._handler.on_response_complete(keep_alive)

    def _keep_alive_from_headers(self) -> bool:
        keep_alive = self._version != "1.0"
        for name, value in self._headers:
            if name.lower() == b"connection":
                token = value.lower()
                if b"close" in token:
                    return False
                if b"keep-alive" in token:
                    keep_alive = True
        return keep_alive
