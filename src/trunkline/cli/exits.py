"""One exit-status table for every command, and the one place errors become a message and a
status (``failure``).

The numbers are curl's wherever curl has one for the same meaning, so a script written for
curl reads ``trunkline call`` the same way, and the same number means the same thing in
``connect``, ``ws``, ``relay`` and ``serve``. A command lists the rows that can happen to it
in its ``--help`` (``exit_help``); the README has the whole table.
"""

from __future__ import annotations

import errno
import ssl
from dataclasses import dataclass
from enum import IntEnum

from ..address import Address, format_address
from ..client import CertificateVerifyError, ServerDisconnectedError
from ..errors import (
    AddressError,
    AddressInUseError,
    ConnectError,
    HandshakeError,
    NotASocketError,
    PeerNotAllowedError,
    ProtocolError,
    RegistryError,
    RegistryUnavailableError,
    ResolveError,
    TransportError,
    TrunklineTimeoutError,
    UnsupportedError,
    os_error_words,
)


class Exit(IntEnum):
    OK = 0
    # not curl's (its 1 is "unsupported protocol"): curl never listens; tour, bench and map use
    # it for their own job not done (a leg, a run, the map), as serve's is not when it cannot
    # bind
    CANNOT_LISTEN = 1
    USAGE = 2
    BAD_ADDRESS = 3
    RESOLVE = 6
    CONNECT = 7
    WEIRD_REPLY = 8
    PARTIAL = 18
    HTTP_ERROR = 22
    WRITE = 23
    READ = 26
    TIMEOUT = 28
    TLS = 35
    TOO_MANY_REDIRECTS = 47
    EMPTY_REPLY = 52
    RECEIVE = 56
    CERTIFICATE = 60
    BAD_ENCODING = 61
    SEND_REWIND = 65
    INTERRUPTED = 130


MEANING: dict[Exit, str] = {
    Exit.OK: "success",
    Exit.CANNOT_LISTEN: "could not listen (the address is in use, permission denied) or "
                        "start (the app's lifespan startup failed); tour, bench, map: a leg, "
                        "a run or the map failed; registry commands: the registry file "
                        "cannot be used (damaged, not writable)",
    Exit.USAGE: "bad usage (an unknown option, a missing argument)",
    Exit.BAD_ADDRESS: "malformed URL or address, or one of a kind the command cannot use",
    Exit.RESOLVE: "could not resolve the host name, or no live instance of the service name",
    Exit.CONNECT: "could not connect (refused, no such socket, not admitted; the registry "
                  "unreachable)",
    Exit.WEIRD_REPLY: "the server's reply was not valid HTTP",
    Exit.PARTIAL: "the body ended before its announced length (connection closed)",
    Exit.HTTP_ERROR: "HTTP status 400 or above, with --fail",
    Exit.WRITE: "could not write the output (stdout, -o FILE, a trace file, a --plot PNG)",
    Exit.READ: "could not read the input (a -d @file, -T FILE)",
    Exit.TIMEOUT: "timed out",
    Exit.TLS: "the TLS handshake failed",
    Exit.TOO_MANY_REDIRECTS: "more redirects than --max-redirs",
    Exit.EMPTY_REPLY: "the server closed the connection without replying",
    Exit.RECEIVE: "the connection broke while receiving (reset, closed abnormally)",
    Exit.CERTIFICATE: "the server's TLS certificate is not trusted (--cacert, or -k)",
    Exit.BAD_ENCODING: "a --compressed body in an encoding we cannot (or could not) decode",
    Exit.SEND_REWIND: "a redirect needs the body again, and it came from stdin",
    Exit.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_help(*codes: Exit) -> str:
    """The ``Exit status`` section of a command's ``--help``: the rows that command uses."""
    rows = "\n".join(f"  {int(code):>3}  {MEANING[code]}" for code in sorted(codes))
    return ("\b\nExit status (the same numbers in every trunkline command; curl's where curl "
            f"has one):\n{rows}")


@dataclass(frozen=True)
class Failure:
    """What a command says (one line, after ``trunkline COMMAND:``) and the status it exits."""

    code: Exit
    message: str


def failure(exc: BaseException, *, address: Address | str | None = None,
            listening: bool = False, timeout_hint: str = "") -> Failure:
    """The message and exit status for ``exc``. ``address`` is where the command tried to go
    (for the fix in the message); ``listening`` marks errors from binding a server's address;
    ``timeout_hint`` names the option that raises a timeout."""
    where = address if isinstance(address, str) or address is None else format_address(address)
    text = _text(exc)
    if isinstance(exc, AddressError):
        return Failure(Exit.BAD_ADDRESS, text)
    if isinstance(exc, UnsupportedError):
        return Failure(Exit.BAD_ADDRESS, text)
    if isinstance(exc, TrunklineTimeoutError | TimeoutError):
        return Failure(Exit.TIMEOUT, text + (f" ({timeout_hint})" if timeout_hint else ""))
    if isinstance(exc, ResolveError):
        return Failure(Exit.RESOLVE, text)
    if isinstance(exc, RegistryUnavailableError):  # etcd down (or a file locked for long)
        return Failure(Exit.CONNECT, text)
    if isinstance(exc, RegistryError):  # the registry file is damaged or not writable
        return Failure(Exit.CANNOT_LISTEN, text)
    if listening and isinstance(exc, OSError):
        return Failure(Exit.CANNOT_LISTEN, text)
    if isinstance(exc, AddressInUseError | NotASocketError):
        return Failure(Exit.CANNOT_LISTEN, text)
    if isinstance(exc, CertificateVerifyError):
        return Failure(Exit.CERTIFICATE, text)
    if isinstance(exc, HandshakeError):
        return Failure(Exit.TLS if _is_tls(exc) else Exit.CONNECT, text)
    if isinstance(exc, PeerNotAllowedError):
        return Failure(Exit.CONNECT, text)
    if isinstance(exc, ConnectError):
        return Failure(Exit.CONNECT, text + _serve_hint(exc, where))
    if isinstance(exc, ServerDisconnectedError):
        if _reset(exc):
            return Failure(Exit.RECEIVE, text)
        return Failure(Exit.EMPTY_REPLY if exc.before_response else Exit.PARTIAL, text)
    if isinstance(exc, ProtocolError):
        return Failure(Exit.WEIRD_REPLY, text)
    if isinstance(exc, BrokenPipeError) and not isinstance(exc, TransportError):
        return Failure(Exit.WRITE, "cannot write the output: the reader went away")
    if isinstance(exc, ssl.SSLError):
        return Failure(Exit.TLS, f"TLS: {exc.reason or exc}")
    return Failure(Exit.RECEIVE, text)


def _text(exc: BaseException) -> str:
    if isinstance(exc, TransportError | ResolveError | AddressError) or not isinstance(
            exc, OSError):
        return str(exc) or type(exc).__name__
    return os_error_words(exc)  # a kernel error that was not translated: words, no errno


def _serve_hint(exc: ConnectError, where: str | None) -> str:
    if exc.errno in (errno.ECONNREFUSED, errno.ENOENT) and where:
        if "server running" in str(exc):  # the library asked already; give the command
            return f": trunkline serve echo --on {where}"
        return f"; is the server running? (trunkline serve echo --on {where})"
    return ""


def _reset(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionResetError) or getattr(cause, "errno", None) in (
                errno.ECONNRESET, errno.EPIPE):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _is_tls(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__
    return "TLS" in str(exc)


__all__ = ["MEANING", "Exit", "Failure", "exit_help", "failure"]
