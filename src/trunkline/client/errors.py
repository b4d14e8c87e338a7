"""Errors the HTTP client raises, each under a class from ``trunkline.errors``.

    TrunklineTimeoutError (TimeoutError)
    ├── ConnectTimeoutError     the connection (resolve, connect, TLS) took too long
    ├── PoolTimeoutError        every pooled connection stayed busy too long
    ├── WriteTimeoutError       the server stopped reading the request body
    └── ReadTimeoutError        the server sent nothing for too long
    TransportError (OSError)
    └── ServerDisconnectedError the server closed the connection before the response ended
    HandshakeError
    └── CertificateVerifyError  the server's TLS certificate is not trusted
    TrunklineError
    └── HTTPStatusError         ``raise_for_status`` on a 4xx/5xx response
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from ..errors import HandshakeError, TransportError, TrunklineError, TrunklineTimeoutError

if TYPE_CHECKING:
    from .models import Response


class ConnectTimeoutError(TrunklineTimeoutError):
    """Connecting (name resolution, transport connect, TLS handshake) ran past its timeout."""


class PoolTimeoutError(TrunklineTimeoutError):
    """No pooled connection became free in time (raise ``Limits.max_connections``)."""


class WriteTimeoutError(TrunklineTimeoutError):
    """The server did not read the request body in time."""


class ReadTimeoutError(TrunklineTimeoutError):
    """The server sent no byte of the response for longer than the read timeout, or the
    whole request ran past its total timeout."""


class ServerDisconnectedError(TransportError):
    """The server closed the connection before the response was complete.

    ``before_response`` is True when not a single response byte arrived: only then is it safe
    to send an idempotent request again."""

    def __init__(self, message: str, *, before_response: bool) -> None:
        super().__init__(message)
        self.before_response = before_response

    def __str__(self) -> str:
        return str(self.args[0])


class CertificateVerifyError(HandshakeError):
    """The server's certificate did not verify against the trusted CAs."""


class HTTPStatusError(TrunklineError):
    """Raised by ``Response.raise_for_status`` for a 4xx or 5xx status."""

    def __init__(self, message: str, response: Response) -> None:
        super().__init__(message)
        self.response = response


def tls_handshake_error(exc: BaseException, where: str) -> HandshakeError:
    """A failed client TLS handshake over ``where`` as our error: ``CertificateVerifyError``
    (with how to trust the CA) when the certificate did not verify, else ``HandshakeError``."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return CertificateVerifyError(
            f"TLS: the certificate of {where} is not trusted: {cause.verify_message}. Trust its "
            "CA with verify='ca.pem' (CLI: --cacert ca.pem); verify=False (-k) turns checking "
            "off, for testing only")
    if isinstance(exc, HandshakeError):
        return exc
    return HandshakeError(f"TLS handshake over {where} failed: {exc}")


__all__ = [
    "CertificateVerifyError", "ConnectTimeoutError", "HTTPStatusError", "PoolTimeoutError",
    "ReadTimeoutError", "ServerDisconnectedError", "WriteTimeoutError", "tls_handshake_error",
]
