"""Checks on a request head the HTTP/1.1 server core makes besides llhttp's (sans-I/O).

- Limits on a head that has not ended yet (or that llhttp refused), so the status says which
  limit whatever the split of the bytes: 414 for the request line, 431 for the header block
  or the field count, 400 for a bare LF.
- The Host field's syntax (RFC 9112 3.2, RFC 3986 3.2.2), which llhttp does not check.
- The path and query of a request target in any of its four forms.
"""

from __future__ import annotations

import ipaddress
import re

import httptools

from .http_server_events import HttpLimits, Reject

# Host = uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2): an IP-literal in brackets
# (IPv6, checked further by ipaddress; or IPvFuture), or a reg-name (unreserved,
# pct-encoded, sub-delims; IPv4 addresses are reg-names by this syntax), possibly empty.
_HOST = re.compile(rb"(?:\[([0-9A-Fa-f:.]+)\]|\[[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+\]"
                   rb"|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?")


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


def bad_host_reason(host: bytes) -> str:
    shown = host.decode("latin-1")
    shown = repr(shown if len(shown) <= 64 else shown[:64] + "...")
    return (f"invalid Host header {shown}: it must be host[:port] "
            "(RFC 9112 3.2, RFC 3986 3.2.2), e.g. 'example.com:8080'")


def head_limit_reject(head: bytes | bytearray, limits: HttpLimits) -> Reject | None:
    """What is wrong with a head that has not ended yet, if anything is already."""
    if head.count(b"\n") != head.count(b"\r\n"):
        return Reject(400, "bare LF in the request head; lines must end with CRLF")
    line_end = head.find(b"\r\n")
    if line_end < 0:
        if len(head) > limits.max_request_line:
            return Reject(414, f"request line longer than {limits.max_request_line} bytes")
        return None
    if line_end > limits.max_request_line:
        return Reject(414, f"request line longer than {limits.max_request_line} bytes")
    if len(head) - line_end - 2 > limits.max_header_bytes:
        return Reject(431, f"header block larger than {limits.max_header_bytes} bytes")
    if head.count(b"\r\n", line_end + 2) > limits.max_header_count:
        return Reject(431, f"more than {limits.max_header_count} header fields")
    return None


def split_target(target: bytes, method: str) -> tuple[bytes, bytes] | None:
    """(raw path, query) of a request target: origin-form (``/p?q``), asterisk-form,
    authority-form (CONNECT) or absolute-form; None when it is malformed."""
    if target.startswith(b"/"):
        raw_path, _, query = target.partition(b"?")
        return raw_path, query
    if target == b"*" or method == "CONNECT":
        return target, b""
    try:
        parsed = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return None
    return parsed.path or b"/", parsed.query or b""


__all__ = ["bad_host_reason", "head_limit_reject", "split_target", "valid_host"]
