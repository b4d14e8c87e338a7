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
    │   ├── HandshakeError           a FIFO or TLS handshake that did not complete
    │   │   ├── WebSocketHandshakeError   the server did not switch to WebSocket (its status)
    │   │   └── CertificateVerifyError*   the server's TLS certificate is not trusted
    │   └── ServerDisconnectedError*      the server closed before the response ended
    ├── ResolveError (OSError)       a name that did not resolve (DNS or the service registry)
    ├── RegistryError                the service registry cannot do what was asked
    │   ├── RegistryUnavailableError     the backend is unreachable and nothing is cached
    │   ├── RegistryFileError            the registry file is damaged or cannot be written
    │   ├── DuplicateInstanceError       a live instance already holds that instance id
    │   └── InvalidRecordError (ValueError)  a record that cannot be registered (bad ttl, ...)
    ├── TrunklineTimeoutError (TimeoutError)
    │   └── ConnectTimeoutError*, PoolTimeoutError*, WriteTimeoutError*, ReadTimeoutError*
    ├── ProtocolError                the peer broke the wire protocol (HTTP, WebSocket)
    │   └── InvalidHeaderError (ValueError)  a header/method of ours that cannot go on the wire
    ├── WebSocketClosed              the WebSocket conversation ended (close frame, or the
    │   │                            connection dropped: code 1006)
    │   └── AsgiWebSocketClosed (OSError)  an ASGI app's send after the end
    ├── HTTPStatusError*             ``raise_for_status`` on a 4xx/5xx response
    ├── AppLoadError                 an app spec that names no loadable ASGI app
    └── LifespanError                the app's lifespan startup or shutdown failed

    * in ``trunkline.client.errors``: the HTTP client's own classes, under the ones above.

``WebSocketClosed`` is not a ``TransportError``: a close is how every WebSocket conversation
ends, as websockets' ``ConnectionClosed`` is not an ``OSError``, and its ``code``/``reason``
say whether the end was normal (``ok``). Nor is it a ``ProtocolError``: the peer usually broke
nothing. Catch it next to the protocol errors, not with the kernel's. Only the ASGI server's
``send`` raises the ``OSError`` subclass, because the ASGI spec asks for one there (Starlette
turns it into its ``WebSocketDisconnect``).

Outside this tree: the tools' own (``bench.process.BenchError``, under ``TrunklineError``)
and private control-flow exceptions that never leave their module.

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

    def __str__(self) -> str:
        # OSError(errno, text) prints "[Errno N] text"; our text says it in words already
        return self.strerror if self.errno is not None and self.strerror else super().__str__()


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

    def __str__(self) -> str:
        return self.strerror if self.errno is not None and self.strerror else super().__str__()


class RegistryError(TrunklineError):
    """The service registry (SQLite file or etcd) cannot do what was asked."""


class RegistryUnavailableError(RegistryError):
    """The registry backend cannot be reached, and there is no cached view to serve."""


class RegistryFileError(RegistryError):
    """The registry file is damaged or cannot be written; names the file and what to do."""

    def __init__(self, path: str, problem: str, remedy: str) -> None:
        self.path = path
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"registry file {path}: {problem}; {remedy}")


class DuplicateInstanceError(RegistryError):
    """A live instance of the service already holds the instance id."""


class InvalidRecordError(RegistryError, ValueError):
    """An instance record that cannot be registered (protocol, ttl, metadata, id)."""


class TrunklineTimeoutError(TrunklineError, TimeoutError):
    """An operation ran past its deadline."""


class ProtocolError(TrunklineError):
    """The peer broke the wire protocol."""


class InvalidHeaderError(ProtocolError, ValueError):
    """A request header name or value that cannot go on the wire."""


#: WebSocket close codes of a normal end: 1000 (normal closure) and 1001 (going away).
OK_CLOSE_CODES = frozenset({1000, 1001})


class WebSocketClosed(TrunklineError):
    """The WebSocket is closed: ``code`` and ``reason`` are the close frame the peer sent
    (1006 and "" when the connection dropped without one); ``by`` is the side that started
    the close ("client", "server", or None when nobody did). ``ok`` for 1000 and 1001."""

    def __init__(self, code: int, reason: str, by: str | None, detail: str = "") -> None:
        self.code = code
        self.reason = reason
        self.by = by
        self.detail = detail
        why = f"{code}" + (f" {reason!r}" if reason else "")
        who = f" by the {by}" if by else ""
        super().__init__(f"the WebSocket was closed{who} ({why}){detail}")

    @property
    def ok(self) -> bool:
        return self.code in OK_CLOSE_CODES

    def __str__(self) -> str:
        return str(self.args[0])


class AsgiWebSocketClosed(WebSocketClosed, OSError):
    """An ASGI app sent on a WebSocket that has ended: the ASGI spec asks servers to raise
    an ``OSError`` subclass there."""


class WebSocketHandshakeError(HandshakeError):
    """The server did not switch to WebSocket: ``status`` (0 when no valid HTTP response
    came), its ``headers`` and ``body`` say why."""

    def __init__(self, message: str, status: int = 0,
                 headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []
        self.body = body

    def __str__(self) -> str:
        return str(self.args[0])


class AppLoadError(TrunklineError):
    """The app spec does not name an app that can be loaded."""


class LifespanError(TrunklineError):
    """The app's lifespan startup or shutdown failed."""


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
