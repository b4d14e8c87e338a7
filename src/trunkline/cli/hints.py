"""What a mistyped address probably meant: ``localhost:8000``, a bare socket path, or socat's
syntax (``TCP-LISTEN:8000``, ``UNIX-CONNECT:/x``), turned into the grammar's URL for the
"did you mean" of an ``AddressError``."""

from __future__ import annotations

import re

from ..address import parse_address, parse_http_url
from ..errors import AddressError

# socat address type -> (our scheme, what its first parameter is)
_SOCAT: dict[str, tuple[str, str]] = {}
for _names, _meaning in (
        ("TCP TCP4 TCP6 TCP-CONNECT TCP4-CONNECT TCP6-CONNECT", ("tcp", "hostport")),
        ("TCP-LISTEN TCP-L TCP4-LISTEN TCP6-LISTEN", ("tcp", "port")),
        ("UDP UDP4 UDP6 UDP-CONNECT UDP-SENDTO UDP4-SENDTO UDP6-SENDTO", ("udp", "hostport")),
        ("UDP-LISTEN UDP-L UDP-RECV UDP-RECVFROM UDP4-LISTEN UDP6-LISTEN", ("udp", "port")),
        ("UNIX UNIX-CONNECT UNIX-LISTEN UNIX-L UNIX-CLIENT", ("unix", "path")),
        ("UNIX-SENDTO UNIX-RECV UNIX-RECVFROM", ("unixgram", "path")),
        ("ABSTRACT ABSTRACT-CONNECT ABSTRACT-LISTEN ABSTRACT-CLIENT", ("unix", "abstract")),
        ("ABSTRACT-SENDTO ABSTRACT-RECV ABSTRACT-RECVFROM", ("unixgram", "abstract")),
        ("OPENSSL OPENSSL-CONNECT SSL", ("tls", "hostport")),
        ("OPENSSL-LISTEN SSL-L", ("tls", "port")),
):
    for _name in _names.split():
        _SOCAT[_name] = _meaning

_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.%]+\]|[A-Za-z0-9_][A-Za-z0-9._-]*):(\d{1,5})$")


def suggest_address(text: str) -> str | None:
    """The URL ``text`` probably meant, checked to parse, or None."""
    guess = _socat(text) or _plain(text)
    if guess is None or guess == text:
        return None
    try:
        parse_address(guess.split(" ", 1)[0])
    except AddressError:
        return None
    return guess


def suggest_http_url(text: str, scheme: str = "http") -> str | None:
    """For an HTTP/WebSocket URL without a scheme: ``localhost:8000/x``, ``/run/app.sock``."""
    if "://" in text:
        return None
    if text.startswith("/"):
        guess = f"{scheme}+unix://{text.replace('/', '%2F')}/"
    else:
        guess = f"{scheme}://{text}"
    try:
        parse_http_url(guess)
    except AddressError:
        return None
    return guess


def _socat(text: str) -> str | None:
    kind, sep, rest = text.partition(":")
    meaning = _SOCAT.get(kind.upper()) if sep else None
    if meaning is None:
        return None
    scheme, what = meaning
    param = rest.split(",", 1)[0]  # socat options follow a comma: TCP-LISTEN:80,fork
    url = None
    if what == "hostport" and _HOSTPORT.match(param):
        url = f"{scheme}://{param}"
    elif what == "port" and param.isdigit():
        v6 = kind.upper().startswith(("TCP6", "UDP6"))
        host, local = ("[::]", "[::1]") if v6 else ("0.0.0.0", "127.0.0.1")
        url = f"{scheme}://{host}:{param}"
    elif what == "path" and param:
        url = f"{scheme}://{param}" if param.startswith("/") else f"{scheme}:{param}"
    elif what == "abstract" and param:
        url = f"{scheme}:@{param}"
    if url is None:
        return None
    if what == "port":
        return (f"{url} (socat's {kind}:{param} takes every interface; "
                f"{scheme}://{local}:{param} is this machine only)")
    return url


def _plain(text: str) -> str | None:
    if _HOSTPORT.match(text):
        return f"tcp://{text}"
    if text.startswith(("/", "./", "../")):
        scheme = "fifo" if text.endswith(".fifo") else "unix"
        return f"{scheme}://{text}" if text.startswith("/") else f"{scheme}:{text}"
    if text.endswith(".sock") and ":" not in text:
        return f"unix:{text}"
    return None


def with_suggestion(exc: AddressError, suggestion: str | None) -> AddressError:
    """``exc`` again, saying what was probably meant (the same class, so a
    ``PathTooLongError`` stays one)."""
    if suggestion is None or exc.suggestion is not None:
        return exc
    return type(exc)(exc.url, exc.part, exc.problem, exc.example, suggestion=suggestion)


__all__ = ["suggest_address", "suggest_http_url", "with_suggestion"]
