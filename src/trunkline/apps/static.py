"""``static DIR``: files under one directory, GET and HEAD.

Rules:
- No path traversal: the decoded path is resolved (symlinks too) and must stay inside the
  resolved root; ``..``, encoded slashes, NUL and backslashes are refused with 404/400.
- Content-Type from the file name (``mimetypes``), ``charset=utf-8`` on text types;
  Content-Length, Last-Modified and ETag on every file response. A directory serves its
  ``index.html``; ``/dir`` redirects to ``/dir/`` first, so relative links work. The
  Location is always an absolute path with one leading slash (``GET //host`` must not
  send a browser to another host) and percent-encoded.
- Conditional requests (RFC 9110 section 13), as Starlette's ``StaticFiles`` does (same ETag:
  the MD5 of mtime and size): ``If-None-Match`` (weak comparison, ``*``), else
  ``If-Modified-Since``, answer 304 with the ETag.
- Ranges (RFC 9110 section 14): one byte range (``bytes=a-b``, ``a-``, ``-n``) gets 206 with
  Content-Range; one that starts past the end gets 416 with ``Content-Range: bytes */SIZE``.
  A Range we do not take (another unit, a malformed or multi-range set, an ``If-Range``
  that does not match strongly) is ignored: 200 with the whole file, as the RFC allows.
- HEAD answers the same headers without reading the file.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import stat
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

from ..server.cycle import Receive, Scope, Send
from ._respond import respond

CHUNK = 256 * 1024
_TEXT = b"text/plain; charset=utf-8"


def content_type(name: str) -> bytes:
    kind, _ = mimetypes.guess_type(name, strict=False)
    if kind is None:
        return b"application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json",
                                            "image/svg+xml", "application/xml"):
        return f"{kind}; charset=utf-8".encode()
    return kind.encode()


class StaticApp:
    def __init__(self, directory: str | os.PathLike[str], index: str = "index.html") -> None:
        root = Path(directory)
        if not root.is_dir():
            raise NotADirectoryError(f"static: {str(directory)!r} is not a directory")
        self.root = root.resolve()
        self.index = index

    def resolve(self, path: str) -> Path | None:
        """The file for a URL path, or None when it would leave the root."""
        if "\0" in path or "\\" in path:
            return None
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            return None
        candidate = self.root.joinpath(*parts)
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if real != self.root and self.root not in real.parents:
            return None
        return real

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await respond(send, 405, b"Method Not Allowed\n", _TEXT, [(b"allow", b"GET, HEAD")])
            return
        raw = scope.get("raw_path") or b""
        if b"%2f" in raw.lower() or b"%5c" in raw.lower():
            await respond(send, 404, b"Not Found\n", _TEXT)
            return
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path):]
        target = self.resolve(path)
        if target is not None and target.is_dir():
            if not path.endswith("/"):
                await respond(send, 308, b"", _TEXT, [(b"location", _directory_location(
                    root_path, path, scope.get("query_string", b"")))])
                return
            target = target / self.index
            if not target.is_file():
                target = None
        if target is None:
            await respond(send, 404, b"Not Found\n", _TEXT)
            return
        await self._send_file(target, method == "HEAD", dict(scope["headers"]), send)

    async def _send_file(self, target: Path, head_only: bool, request: dict[bytes, bytes],
                         send: Send) -> None:
        try:
            handle = open(target, "rb")  # noqa: SIM115 - closed in finally below
        except OSError:
            await respond(send, 404, b"Not Found\n", _TEXT)
            return
        try:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                await respond(send, 404, b"Not Found\n", _TEXT)
                return
            size = info.st_size
            etag = etag_of(info)
            modified = formatdate(info.st_mtime, usegmt=True).encode()
            if not_modified(request, etag, info.st_mtime):
                await send({"type": "http.response.start", "status": 304,
                            "headers": [(b"etag", etag)]})
                await send({"type": "http.response.body", "body": b""})
                return
            headers = [(b"content-type", content_type(target.name)), (b"last-modified", modified),
                       (b"etag", etag), (b"accept-ranges", b"bytes")]
            wanted = byte_range(request, size, etag, modified)
            if wanted == UNSATISFIABLE:
                await respond(send, 416, b"Range Not Satisfiable\n", _TEXT,
                              [(b"content-range", f"bytes */{size}".encode())])
                return
            status, first, left = 200, 0, size
            if wanted is not None:
                first, last = wanted
                status, left = 206, last - first + 1
                headers.append((b"content-range", f"bytes {first}-{last}/{size}".encode()))
            headers.append((b"content-length", str(left).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            if head_only or left == 0:
                await send({"type": "http.response.body", "body": b""})
                return
            if first:
                handle.seek(first)
            while left > 0:
                chunk = handle.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(f"{target} shrank while being sent")
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk,
                            "more_body": left > 0})
        finally:
            handle.close()


def _directory_location(root_path: str, path: str, query: bytes) -> bytes:
    """Where ``/dir`` redirects: ``/dir/``, as one absolute path. Empty segments are
    dropped, so ``//evil.example`` cannot become a scheme-relative ``//evil.example/``."""
    parts = [p for p in (root_path + path).split("/") if p]
    location = quote("/" + "/".join(parts) + "/", safe="/!$&'()*+,;=:@-._~")
    return location.encode("ascii") + (b"?" + query if query else b"")


def etag_of(info: os.stat_result) -> bytes:
    """Starlette's FileResponse ETag: the MD5 of mtime and size, quoted (strong)."""
    base = f"{info.st_mtime}-{info.st_size}".encode()
    return b'"' + hashlib.md5(base, usedforsecurity=False).hexdigest().encode() + b'"'


def not_modified(request: dict[bytes, bytes], etag: bytes, mtime: float) -> bool:
    """RFC 9110 13.1.2-13.1.3: If-None-Match (weak comparison) decides when present;
    otherwise If-Modified-Since at or after the file's time (whole seconds)."""
    match = request.get(b"if-none-match")
    if match is not None:
        tags = [tag.strip() for tag in match.split(b",")]
        return b"*" in tags or etag in (t.removeprefix(b"W/") for t in tags)
    since = request.get(b"if-modified-since")
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since.decode("latin-1"))
    except (TypeError, ValueError):
        return False  # RFC 9110 13.1.3: an invalid date is ignored
    return when.timestamp() >= int(mtime)


#: ``byte_range`` found only ranges that start past the end: 416
UNSATISFIABLE = (-1, -1)


def byte_range(request: dict[bytes, bytes], size: int, etag: bytes, modified: bytes
               ) -> tuple[int, int] | None:
    """The one byte range to send as (first, last), UNSATISFIABLE, or None for the whole
    file (no Range, or one we ignore: RFC 9110 14.2 lets a server ignore any Range)."""
    spec = request.get(b"range")
    if spec is None:
        return None
    condition = request.get(b"if-range")
    if condition is not None and condition.strip() not in (etag, modified):
        return None  # If-Range (13.1.5): the representation changed (or a weak tag): all
    unit, _, ranges = spec.partition(b"=")
    if unit.strip().lower() != b"bytes" or b"," in ranges:
        return None  # another unit, or several ranges: the whole file
    first_text, dash, last_text = ranges.strip().partition(b"-")
    if not dash or not (first_text.isdigit() or not first_text) or \
            not (last_text.isdigit() or not last_text) or not (first_text or last_text):
        return None  # malformed
    if not first_text:  # suffix: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - suffix), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # invalid range-spec: ignored
    if first >= size:
        return UNSATISFIABLE
    return first, min(int(last_text), size - 1) if last_text else size - 1
