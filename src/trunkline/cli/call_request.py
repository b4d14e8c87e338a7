"""What ``trunkline call`` sends, from its command line, by curl's rules.

- ``-d/--data``, ``--data-raw``, ``--data-binary``, ``--data-urlencode`` may be repeated and
  mixed; the pieces are joined with ``&`` in command-line order. ``-d @file`` drops the file's
  CR and LF bytes (curl does, for form files); ``--data-binary @file`` keeps every byte;
  ``--data-raw`` never reads a file. ``--json`` pieces are concatenated as they are.
- ``--data-urlencode``: ``content``, ``=content``, ``name=content``, ``@file``, ``name@file``;
  the content is percent-encoded (``name`` is not).
- ``-G`` moves the data into the URL's query and sends GET (HEAD with ``-I``).
- The method: METHOD or ``-X``, else HEAD for ``-I``, PUT for ``-T``, POST for data, GET.
- ``-u user:pass`` sends Basic credentials (``-u user`` asks for the password).
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Literal
from urllib.parse import quote_plus, unquote

import click

DataKind = Literal["data", "raw", "binary", "urlencode", "json"]

#: Options that carry request data, as written on the command line (long and short forms).
DATA_FLAGS: dict[str, DataKind] = {
    "-d": "data", "--data": "data", "--data-ascii": "data", "--data-raw": "raw",
    "--data-binary": "binary", "--data-urlencode": "urlencode", "--json": "json",
}


class InputError(Exception):
    """A file named on the command line could not be read (curl's status 26)."""


@dataclass(frozen=True)
class DataPiece:
    kind: DataKind
    value: str


def in_command_line_order(argv: Sequence[str], given: dict[DataKind, Sequence[str]]
                          ) -> list[DataPiece]:
    """The data pieces in the order they were typed: click groups values by option, curl
    joins them in command-line order (``-d a=1 --data-urlencode b=x y -d c=3``)."""
    queues = {kind: list(values) for kind, values in given.items()}
    order: list[DataKind] = []
    for word in argv:
        if word == "--":
            break
        flag = word.split("=", 1)[0] if word.startswith("--") else word[:2]
        kind = DATA_FLAGS.get(flag)
        if kind is not None:
            order.append(kind)
    pieces = []
    if sorted(order) == sorted(k for k, vs in queues.items() for _ in vs):
        for kind in order:
            pieces.append(DataPiece(kind, queues[kind].pop(0)))
        return pieces
    # a spelling we did not follow (-sd VALUE): keep each option's own order
    return [DataPiece(kind, v) for kind, values in queues.items() for v in values]


def _escape(data: str | bytes) -> str:
    """As curl's --data-urlencode: everything but A-Z a-z 0-9 - . _ ~ as %XX, a space as +."""
    return quote_plus(data, safe="")


def _read(path: str, stdin: IO[bytes]) -> bytes:
    if path == "-":
        return stdin.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def encode_piece(piece: DataPiece, stdin: IO[bytes]) -> bytes:
    value = piece.value
    if piece.kind == "raw":
        return value.encode()
    if piece.kind in ("data", "binary", "json"):
        if not value.startswith("@"):
            return value.encode()
        data = _read(value[1:], stdin)
        return data.replace(b"\r", b"").replace(b"\n", b"") if piece.kind == "data" else data
    # --data-urlencode
    if value.startswith("@"):
        return _escape(_read(value[1:], stdin)).encode()
    name, eq, content = value.partition("=")
    if eq:
        return (f"{name}=" if name else "").encode() + _escape(content).encode()
    name, at, path = value.partition("@")
    if at:
        return f"{name}=".encode() + _escape(_read(path, stdin)).encode()
    return _escape(value).encode()


def join_data(pieces: Sequence[DataPiece], stdin: IO[bytes] | None = None) -> bytes | None:
    """The body the pieces make, or None when there are none."""
    if not pieces:
        return None
    source = stdin if stdin is not None else sys.stdin.buffer
    if any(p.kind == "json" for p in pieces):
        if not all(p.kind == "json" for p in pieces):
            raise click.UsageError("--json cannot be mixed with -d/--data-*: give the whole "
                                   "JSON with --json, or form data with -d")
        return b"".join(encode_piece(p, source) for p in pieces)
    return b"&".join(encode_piece(p, source) for p in pieces)


def choose_method(explicit: str | None, *, head: bool, upload: bool, data: bool,
                  get: bool) -> str:
    if explicit:
        return explicit.upper()
    if head:
        return "HEAD"
    if get:
        return "GET"
    if upload:
        return "PUT"
    return "POST" if data else "GET"


def basic_auth(user: str) -> str:
    """The Authorization value for ``-u USER[:PASSWORD]``; asks for a missing password on the
    terminal (curl does), refuses when there is none."""
    name, colon, password = user.partition(":")
    if not colon:
        if not sys.stdin.isatty():
            raise click.BadParameter("give USER:PASSWORD (no terminal to ask the password "
                                     "on)", param_hint="-u")
        password = click.prompt(f"Enter host password for user '{name}'", hide_input=True,
                                default="", show_default=False, err=True)
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return f"Basic {token}"


def split_userinfo(url: str) -> tuple[str, str | None]:
    """``http://user:pass@host/p`` -> (``http://host/p``, ``user:pass``), as curl reads it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, None
    authority, slash, tail = rest.partition("/")
    if "@" not in authority:
        return url, None
    userinfo, _, host = authority.rpartition("@")
    return f"{scheme}://{host}{slash}{tail}", unquote(userinfo)


def remote_file_name(url: str) -> str:
    """``-O``: the file name is the URL path's last segment (curl's rule; no directories)."""
    path = url.split("://", 1)[-1].split("?", 1)[0].split("#", 1)[0]
    name = path.rsplit("/", 1)[-1] if "/" in path else ""
    if not name:
        raise click.UsageError(f"-O needs a file name at the end of the URL's path, and "
                               f"{url} has none; use -o FILE")
    name = os.path.basename(unquote(name))
    if name in ("", ".", ".."):
        raise click.UsageError(f"-O cannot use {name!r} from {url} as a file name; use -o FILE")
    return name


__all__ = ["DATA_FLAGS", "DataPiece", "InputError", "basic_auth", "choose_method",
           "in_command_line_order", "join_data", "remote_file_name", "split_userinfo"]
