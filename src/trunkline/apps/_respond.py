"""Small helpers the built-in apps share: whole responses in two sends."""

from __future__ import annotations

import json
from typing import Any

from ..server.cycle import Send


async def respond(send: Send, status: int, body: bytes, content_type: bytes,
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, value: Any,
                       extra: list[tuple[bytes, bytes]] | None = None) -> None:
    # backslashreplace: a socket path byte that is not UTF-8 (U+DCFF, os.fsdecode) becomes the
    # JSON escape \udcff, which every JSON parser reads back, instead of a crash
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "backslashreplace") + b"\n"
    await respond(send, status, body, b"application/json", extra)


async def read_body(receive: Any, limit: int | None = None) -> bytes | None:
    """The whole request body, or None if the client went away (or it passed ``limit``)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
