"""Every error trunkline raises, under one root.

    TrunklineError
    ├── AddressError (ValueError)    a URL that does not parse; names the part, shows an example
    │   └── PathTooLongError         a Unix/FIFO path over the kernel's 107-byte limit
    ├── UnsupportedError             the socket kind cannot do what was asked (half-close on UDP)
    ├── TransportError (OSError)     the kernel said no
    │   ├── ConnectError             could not connect (refused, unreachable, no such socket)
    │   ├── AddressInUseError        a live server already owns that address; we never steal it
    │   ├── NotASocketError          a non-socket file sits at a socket path; we never remove it
    │   ├── PeerNotAllowedError      the peer's uid/gid is not on the server's admit list
    │   ├── DatagramTooLargeError    a datagram over the socket kind's size limit
    │   └── HandshakeError           a FIFO or TLS handshake that did not complete
    ├── ResolveError (OSError)       a name that did not resolve (DNS or the service registry)
    ├── TrunklineTimeoutError (TimeoutError)
    └── ProtocolError                the peer broke the wire protocol (HTTP, WebSocket)

Subclasses for the HTTP client (timeouts per phase, server disconnects, certificate
failures) live in ``trunkline.client.exceptions``, each under one of the classes above.

Foreign errors (OSError from the kernel, ssl errors, asyncio timeouts) are translated at the
edge where they happen, so callers only ever catch these; ``os_error_words`` is the one place
that turns a kernel error into words for their messages (no "[Errno 111]", no repeated
address).
"""

from __future__ import annotations

import errno as _errno


class TrunklineError(Exception):
    """Root of every error trunkline raises."""


class AddressError(TrunklineError, ValueError):
    """An endpoint URL that does not parse."""

    def __init__(self, url: str, part: str, problem: str, example: str, *,
                 suggestion: str | None = None) -> None:
        self.url = url
        self.part = part
        self.problem = problem
        self.example = example
        self.suggestion = suggestion  # what the user probably meant, if we can tell
        tail = f"; did you mean {suggestion}?" if suggestion else f" (example: {example})"
        super().__init__(f"bad address {url!r}: {part} {problem}{tail}")


class PathTooLongError(AddressError):
    """A socket path longer than the kernel accepts (sun_path is 108 bytes with the NUL)."""


class UnsupportedError(TrunklineError):
    """The socket kind cannot do what was asked."""


class TransportError(TrunklineError, OSError):
    """The kernel refused an operation on a socket or pipe."""


class ConnectError(TransportError):
    """Could not reach the peer."""


class AddressInUseError(TransportError):
    """A live server owns the address already."""


class NotASocketError(TransportError):
    """A file that is not a socket sits where a socket was to be bound."""


class PeerNotAllowedError(TransportError):
    """The peer's credentials are not admitted by the server."""


class DatagramTooLargeError(TransportError):
    """A datagram larger than the socket kind can carry."""


class HandshakeError(TransportError):
    """A FIFO rendezvous or TLS handshake did not complete."""


class ResolveError(TrunklineError, OSError):
    """A name that did not resolve."""


class TrunklineTimeoutError(TrunklineError, TimeoutError):
    """An operation ran past its deadline."""


class ProtocolError(TrunklineError):
    """The peer broke the wire protocol."""


_WORDS = {
    _errno.ECONNREFUSED: "connection refused",
    _errno.ENOENT: "no such file",
    _errno.ETIMEDOUT: "timed out",
    _errno.ECONNRESET: "the peer reset the connection",
    _errno.ECONNABORTED: "the connection was aborted",
    _errno.EPIPE: "broken pipe (the peer closed its side)",
    _errno.EACCES: "permission denied",
    _errno.EPERM: "operation not permitted",
    _errno.ENETUNREACH: "the network is unreachable",
    _errno.EHOSTUNREACH: "no route to the host",
    _errno.EADDRINUSE: "the address is in use",
    _errno.EADDRNOTAVAIL: "the address is not available on this machine",
    _errno.ENOTSOCK: "not a socket",
    _errno.ENOTDIR: "a part of the path is not a directory",
    _errno.ENXIO: "no process has the other end open",
    _errno.EAGAIN: "the receiver's queue is full",
}


def os_error_words(exc: BaseException) -> str:
    """A kernel error in words, without the errno prefix or the address asyncio appends
    ("Connect call failed ('127.0.0.1', 1)" becomes "connection refused (...)")."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code in _WORDS:
        return _WORDS[code]
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror[0].lower() + strerror[1:]
    text = str(exc)
    return text or type(exc).__name__
