"""``static DIR``: files under one directory, GET and HEAD.

Rules:
- No path traversal: the decoded path is resolved (symlinks too) and must stay inside the
  resolved root; ``..``, encoded slashes, NUL and backslashes are refused with 404/400.
- Content-Type from the file name (``mimetypes``), ``charset=utf-8`` on text types;
  Content-Length and Last-Modified on every file response. A directory serves its
  ``index.html``; ``/dir`` redirects to ``/dir/`` first, so relative links work.
- HEAD answers the same headers without reading the file. Range is not supported (the
  whole file is sent; ``Accept-Ranges: none`` says so).
"""

from __future__ import annotations

import mimetypes
import os
import stat
from email.utils import formatdate
from pathlib import Path

from ..server.cycle import Receive, Scope, Send
from ._respond import respond

CHUNK = 256 * 1024


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
            await respond(send, 405, b"Method Not Allowed\n", b"text/plain; charset=utf-8",
                          [(b"allow", b"GET, HEAD")])
            return
        raw = scope.get("raw_path") or b""
        if b"%2f" in raw.lower() or b"%5c" in raw.lower():
            await respond(send, 404, b"Not Found\n", b"text/plain; charset=utf-8")
            return
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path):]
        target = self.resolve(path)
        if target is not None and target.is_dir():
            if not path.endswith("/"):
                location = (root_path + path + "/").encode("utf-8", "surrogateescape")
                query = scope.get("query_string", b"")
                await respond(send, 308, b"", b"text/plain; charset=utf-8",
                              [(b"location", location + (b"?" + query if query else b""))])
                return
            target = target / self.index
            if not target.is_file():
                target = None
        if target is None:
            await respond(send, 404, b"Not Found\n", b"text/plain; charset=utf-8")
            return
        await self._send_file(target, method == "HEAD", send)

    async def _send_file(self, target: Path, head_only: bool, send: Send) -> None:
        try:
            handle = open(target, "rb")  # noqa: SIM115 - closed in finally below
        except OSError:
            await respond(send, 404, b"Not Found\n", b"text/plain; charset=utf-8")
            return
        try:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                await respond(send, 404, b"Not Found\n", b"text/plain; charset=utf-8")
                return
            size = info.st_size
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", content_type(target.name)),
                (b"content-length", str(size).encode()),
                (b"last-modified", formatdate(info.st_mtime, usegmt=True).encode()),
                (b"accept-ranges", b"none")]})
            if head_only or size == 0:
                await send({"type": "http.response.body", "body": b""})
                return
            left = size
            while left > 0:
                chunk = handle.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(f"{target} shrank while being sent")
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk,
                            "more_body": left > 0})
        finally:
            handle.close()
